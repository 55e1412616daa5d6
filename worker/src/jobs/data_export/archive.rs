//! The archive a data export writes: a ZIP built on a blocking thread, fed JSON arrays page
//! by page and stored files chunk by chunk, so memory stays flat however much an account holds.

use super::*;

pub(super) fn push_item(
    chunk: &mut Vec<u8>,
    first: &mut bool,
    item: &Value,
) -> Result<(), JobError> {
    chunk.extend_from_slice(if *first { b"\n  " } else { b",\n  " });
    *first = false;
    serde_json::to_writer(&mut *chunk, item).map_err(|e| JobError::permanent("encoding a row", e))
}

/// The ZIP being written. The writer is synchronous: each step runs on the blocking pool,
/// taking the writer there and back.
pub(super) struct Archive<'a> {
    zip: Option<ZipWriter<File>>,
    work: PathBuf,
    env: &'a JobEnv,
}

impl<'a> Archive<'a> {
    /// An archive written to `file`, staging stored files in `work`.
    pub(super) fn new(file: File, work: PathBuf, env: &'a JobEnv) -> Self {
        Self {
            zip: Some(ZipWriter::new(file)),
            work,
            env,
        }
    }

    pub(super) async fn with<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&mut ZipWriter<File>) -> zip::result::ZipResult<T> + Send + 'static,
    ) -> Result<T, JobError> {
        let mut zip = self.zip.take().ok_or_else(|| {
            JobError::Permanent("the archive was lost after a failed step".into())
        })?;
        let (zip, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut zip);
            (zip, result)
        })
        .await
        .map_err(|e| JobError::transient("writing the archive", e))?;
        self.zip = Some(zip);
        result.map_err(|e| JobError::transient("writing the archive", e))
    }

    /// Writes the central directory and closes the file.
    pub(super) async fn finish(&mut self) -> Result<(), JobError> {
        let zip = self.zip.take().ok_or_else(|| {
            JobError::Permanent("the archive was lost after a failed step".into())
        })?;
        let file = tokio::task::spawn_blocking(move || zip.finish())
            .await
            .map_err(|e| JobError::transient("finishing the archive", e))?
            .map_err(|e| JobError::transient("finishing the archive", e))?;
        file.sync_all()
            .map_err(|e| JobError::transient("finishing the archive", e))
    }

    /// A whole small file.
    pub(super) async fn bytes(&mut self, name: &str, data: Vec<u8>) -> Result<(), JobError> {
        let name = name.to_owned();
        self.with(move |zip| {
            zip.start_file(name, deflated())?;
            zip.write_all(&data)?;
            Ok(())
        })
        .await
    }

    /// Starts a file holding a JSON array; items follow through [`Self::bytes_to_current`].
    pub(super) async fn begin_array(&mut self, name: &str) -> Result<(), JobError> {
        let name = name.to_owned();
        self.with(move |zip| {
            zip.start_file(name, deflated())?;
            zip.write_all(b"[")?;
            Ok(())
        })
        .await
    }

    /// More bytes of the file being written.
    pub(super) async fn bytes_to_current(&mut self, data: Vec<u8>) -> Result<(), JobError> {
        self.with(move |zip| Ok(zip.write_all(&data)?)).await
    }

    /// One JSON file holding `view`, as the API writes it.
    pub(super) async fn object(&mut self, name: &str, view: &impl ToJSON) -> Result<(), JobError> {
        let mut data = serde_json::to_vec_pretty(&view.to_json().unwrap_or(Value::Null))
            .map_err(|e| JobError::permanent("encoding a record", e))?;
        data.push(b'\n');
        self.bytes(name, data).await
    }

    /// One JSON array file of the views `item` makes of the rows `page` reads, page after
    /// page (`page(before)` reads the rows before the id `before`, as the API's lists do;
    /// `id` names a row). A row whose view is `None` (not there yet) is left out.
    pub(super) async fn array<'f, R, V: ToJSON>(
        &mut self,
        name: &str,
        page: impl Fn(Option<String>) -> BoxFuture<'f, sqlx::Result<Vec<R>>>,
        id: fn(&R) -> &String,
        mut item: impl FnMut(R) -> BoxFuture<'f, Result<Option<V>, JobError>>,
    ) -> Result<(), JobError> {
        self.begin_array(name).await?;
        let mut before: Option<String> = None;
        let mut first = true;
        loop {
            let rows = page(before.clone()).await.map_err(|e| {
                JobError::Transient(format!("reading the records of {name}: {e:#}"))
            })?;
            let Some(last) = rows.last() else {
                break;
            };
            before = Some(id(last).clone());
            let mut chunk = Vec::new();
            for row in rows {
                if let Some(view) = item(row).await? {
                    push_item(
                        &mut chunk,
                        &mut first,
                        &view.to_json().unwrap_or(Value::Null),
                    )?;
                }
            }
            self.bytes_to_current(chunk).await?;
        }
        self.bytes_to_current(b"\n]\n".to_vec()).await
    }

    /// A stored object, copied through a local file (stored as is: audio is compressed).
    pub(super) async fn stored(&mut self, name: &str, key: &str) -> Result<(), JobError> {
        let local = self.work.join("object");
        self.env
            .store
            .download(key, &local)
            .await
            .map_err(|e| JobError::Transient(format!("reading a stored file: {e:#}")))?;
        let name = name.to_owned();
        let path: PathBuf = local.clone();
        self.with(move |zip| {
            zip.start_file(
                name,
                SimpleFileOptions::default()
                    .compression_method(CompressionMethod::Stored)
                    .large_file(true),
            )?;
            let mut file = File::open(Path::new(&path))?;
            std::io::copy(&mut file, zip)?;
            Ok(())
        })
        .await?;
        tokio::fs::remove_file(&local)
            .await
            .map_err(|e| JobError::transient("removing a copied file", e))
    }
}

pub(super) fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}
