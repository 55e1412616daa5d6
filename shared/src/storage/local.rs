//! The local-disk backend of the object store (embedded mode): one file per object under a
//! root directory, written as a `.partial` file and renamed when complete.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::PutError;

/// Objects as files under `root`.
#[derive(Clone, Debug)]
pub(super) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub(super) async fn ping(&self) -> anyhow::Result<()> {
        tokio::fs::metadata(&self.root).await?;
        Ok(())
    }

    pub(super) async fn put<S>(&self, key: &str, body: S, limit: u64) -> Result<u64, PutError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        put_local(&self.root.join(key), body, limit).await
    }

    pub(super) async fn read(&self, key: &str) -> anyhow::Result<Bytes> {
        Ok(tokio::fs::read(self.root.join(key))
            .await
            .with_context(|| format!("reading object {key}"))?
            .into())
    }

    pub(super) async fn download(&self, key: &str, to: &Path) -> anyhow::Result<u64> {
        tokio::fs::copy(self.root.join(key), to)
            .await
            .with_context(|| format!("reading object {key}"))
    }

    pub(super) async fn reader(&self, key: &str) -> anyhow::Result<(u64, super::ObjectReader)> {
        let file = tokio::fs::File::open(self.root.join(key))
            .await
            .with_context(|| format!("reading object {key}"))?;
        let size = file.metadata().await?.len();
        Ok((size, Box::pin(file)))
    }

    pub(super) async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match tokio::fs::metadata(self.root.join(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> anyhow::Result<()> {
        remove_if_exists(&self.root.join(key)).await
    }

    /// One page of objects under `prefix` after `start_after`. A local store is a laptop's:
    /// the page is taken from one sorted walk of the prefix's folder.
    pub(super) async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<super::ObjectInfo>> {
        let mut page = Vec::new();
        for key in self.list(prefix).await? {
            if key.ends_with(".partial") || start_after.is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            let meta = tokio::fs::metadata(self.root.join(&key)).await?;
            let modified_ms = meta
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            page.push(super::ObjectInfo {
                key,
                size: meta.len(),
                modified_ms,
            });
            if page.len() == limit {
                break;
            }
        }
        Ok(page)
    }

    /// Removes the `.partial` file an interrupted upload to `key` left.
    pub(super) async fn discard_partial(&self, key: &str) -> anyhow::Result<()> {
        remove_if_exists(&partial_path(&self.root.join(key))).await
    }

    pub(super) async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let root = &self.root;
        let mut keys = Vec::new();
        // Only the prefix's folder can hold its keys.
        let folder = prefix.rfind('/').map_or("", |end| &prefix[..end]);
        let mut dirs = vec![root.join(folder)];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let path = entry.path();
                if entry.file_type().await?.is_dir() {
                    dirs.push(path);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Where an object is written while it streams in.
fn partial_path(path: &Path) -> PathBuf {
    path.with_extension("partial")
}

/// Removes a local file; a missing one is not an error.
async fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting {}", path.display())),
    }
}

async fn put_local<S>(path: &Path, mut body: S, limit: u64) -> Result<u64, PutError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    let store_err = |e: std::io::Error| PutError::Store(e.into());
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(store_err)?;
    }
    let partial = partial_path(path);
    let mut file = tokio::fs::File::create(&partial).await.map_err(store_err)?;
    let result = async {
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(PutError::Body)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(PutError::TooLarge { limit });
            }
            file.write_all(&chunk).await.map_err(store_err)?;
        }
        file.sync_all().await.map_err(store_err)?;
        Ok(size)
    }
    .await;
    drop(file);
    match result {
        Ok(size) => {
            tokio::fs::rename(&partial, path).await.map_err(store_err)?;
            Ok(size)
        }
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin + Send {
        let chunks: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![7u8; n])))
            .collect();
        futures::stream::iter(chunks)
    }

    #[tokio::test]
    async fn local_put_counts_bytes_and_refuses_oversized_bodies() {
        let dir = tempfile_dir();
        let store = LocalStore::new(dir.clone());
        let size = store.put("a/b.bin", chunks(&[10, 20]), 100).await.unwrap();
        assert_eq!(size, 30);
        assert_eq!(store.list("a/").await.unwrap(), ["a/b.bin"]);

        let err = store
            .put("a/c.bin", chunks(&[60, 60]), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 100 }));
        // Neither a/c.bin nor its partial file is left.
        assert_eq!(store.list("a/").await.unwrap(), ["a/b.bin"]);

        store.delete("a/b.bin").await.unwrap();
        store.delete("a/b.bin").await.unwrap();
        assert!(store.list("a/").await.unwrap().is_empty());
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tend-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
