//! The row checksum that proves a restore complete (a sum of row digests, independent of row
//! order), and the SHA-256 of each stored file.

use super::*;

/// The order-free checksum of a table's rows, fed one row at a time.
pub(super) enum RowsChecksum {
    /// Format 2: the sum of the rows' digests as 256-bit big-endian numbers, modulo 2^256
    /// (little-endian limbs here). Constant memory.
    Sum { limbs: [u64; 4], rows: u64 },
    /// Format 1: the SHA-256 of the rows' digests in sorted order (32 bytes a row, kept only
    /// to check backups taken in that format).
    Sorted(Vec<[u8; 32]>),
}

impl RowsChecksum {
    pub(super) fn new(format: u32) -> Self {
        if format == 1 {
            RowsChecksum::Sorted(Vec::new())
        } else {
            RowsChecksum::Sum {
                limbs: [0; 4],
                rows: 0,
            }
        }
    }

    /// Adds one row, as its encoded line.
    pub(super) fn add(&mut self, line: &[u8]) {
        let digest: [u8; 32] = Sha256::digest(line).into();
        match self {
            RowsChecksum::Sum { limbs, rows } => {
                *rows += 1;
                let mut carry = false;
                for (i, limb) in limbs.iter_mut().enumerate() {
                    let start = 32 - 8 * (i + 1);
                    let part = u64::from_be_bytes(digest[start..start + 8].try_into().unwrap());
                    let (sum, c1) = limb.overflowing_add(part);
                    let (sum, c2) = sum.overflowing_add(u64::from(carry));
                    *limb = sum;
                    carry = c1 || c2;
                }
            }
            RowsChecksum::Sorted(digests) => digests.push(digest),
        }
    }

    /// The row count and the checksum, hex.
    pub(super) fn finish(self) -> (u64, String) {
        match self {
            RowsChecksum::Sum { limbs, rows } => {
                let bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
                (rows, hex::encode(bytes))
            }
            RowsChecksum::Sorted(mut digests) => {
                digests.sort_unstable();
                let mut hasher = Sha256::new();
                for digest in &digests {
                    hasher.update(digest);
                }
                (digests.len() as u64, hex::encode(hasher.finalize()))
            }
        }
    }
}

/// One table of a backup as JSON-lines text (decompressed): for checks and tools that read a
/// backup without restoring it.
pub async fn table_text(
    store: &ObjectStore,
    manifest: &Manifest,
    table: &str,
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let bytes = store
        .read(&table_key(&manifest.id, table, manifest.format))
        .await?;
    if manifest.format == 1 {
        return Ok(String::from_utf8(bytes.to_vec())?);
    }
    let mut text = String::new();
    ZstdDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .await?;
    Ok(text)
}

/// Counts and checksums `table` as it is now in `conn`, the way backups of `format` do.
pub(super) async fn checksum_table(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[Column],
    format: u32,
) -> anyhow::Result<(u64, String)> {
    let sql = select_all(table, columns);
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let mut checksum = RowsChecksum::new(format);
    while let Some(row) = rows.try_next().await? {
        checksum.add(&serde_json::to_vec(&encode_row(&row, columns)?)?);
    }
    Ok(checksum.finish())
}
