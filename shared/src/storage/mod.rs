//! The object store: where uploaded session audio lives, on local disk (embedded, the
//! `local` module) or in S3 (production, or any S3-compatible server, the `s3` module).
//!
//! Uploads are streamed: the local backend writes a `.partial` file and renames it when
//! complete; the S3 backend sends parts of [`PART_SIZE`] through a multipart upload (one
//! `PutObject` for small objects), so memory stays bounded by one part whatever the size.
//! A failed or oversized upload leaves nothing behind.

mod local;
mod s3;

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use futures::Stream;

use crate::config::{Settings, StorageBackend};

pub use s3::PART_SIZE;

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The body went past the limit; nothing was kept.
    #[error("the upload is larger than {limit} bytes")]
    TooLarge {
        /// The limit that was crossed.
        limit: u64,
    },
    /// Reading the body failed (the client went away or sent a broken body).
    #[error("reading the upload failed: {0}")]
    Body(std::io::Error),
    /// The store refused or could not be reached.
    #[error("the object store failed: {0:#}")]
    Store(anyhow::Error),
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (ms since the epoch).
    pub modified_ms: i64,
}

/// An object being read, as a byte stream.
pub type ObjectReader = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// A connected object store; cheap to clone. Each operation goes to the configured backend,
/// which implements the same operations in its own module.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Local(local::LocalStore),
    S3(s3::S3Store),
}

impl ObjectStore {
    /// Builds the store from `STORAGE_URL` (creating the local directory if needed).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let backend = match &settings.storage {
            StorageBackend::Local(root) => {
                tokio::fs::create_dir_all(root).await.with_context(|| {
                    format!("creating the storage directory {}", root.display())
                })?;
                Backend::Local(local::LocalStore::new(root.clone()))
            }
            StorageBackend::S3(settings) => Backend::S3(s3::S3Store::new(settings)?),
        };
        Ok(Self { backend })
    }

    /// Checks the store is reachable (for `/ready`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Local(store) => store.ping().await,
            Backend::S3(store) => store.ping().await,
        }
    }

    /// Streams `body` into `key`, refusing it once it passes `limit` bytes. Returns the size.
    pub async fn put<S>(
        &self,
        key: &str,
        content_type: &str,
        body: S,
        limit: u64,
    ) -> Result<u64, PutError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        match &self.backend {
            Backend::Local(store) => store.put(key, body, limit).await,
            Backend::S3(store) => store.put(key, content_type, body, limit).await,
        }
    }

    /// The object at `key`, in memory (for objects known to be small).
    pub async fn read(&self, key: &str) -> anyhow::Result<Bytes> {
        match &self.backend {
            Backend::Local(store) => store.read(key).await,
            Backend::S3(store) => store.read(key).await,
        }
    }

    /// Copies the object at `key` into a local file (the worker decodes from disk).
    pub async fn download(&self, key: &str, to: &Path) -> anyhow::Result<u64> {
        match &self.backend {
            Backend::Local(store) => store.download(key, to).await,
            Backend::S3(store) => store.download(key, to).await,
        }
    }

    /// A reader of the object at `key` and its size, to stream it (downloads, exports)
    /// without holding it in memory.
    pub async fn reader(&self, key: &str) -> anyhow::Result<(u64, ObjectReader)> {
        match &self.backend {
            Backend::Local(store) => store.reader(key).await,
            Backend::S3(store) => store.reader(key).await,
        }
    }

    /// The size of the object at `key`, or `None` when there is none.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match &self.backend {
            Backend::Local(store) => store.size(key).await,
            Backend::S3(store) => store.size(key).await,
        }
    }

    /// Removes the object at `key`; removing a missing object is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Local(store) => store.delete(key).await,
            Backend::S3(store) => store.delete(key).await,
        }
    }

    /// Removes whatever an abandoned upload to `key` left: the object, a local `.partial`
    /// file, or S3 multipart uploads that were never completed (which S3 bills for).
    pub async fn discard(&self, key: &str) -> anyhow::Result<()> {
        self.delete(key).await?;
        match &self.backend {
            Backend::Local(store) => store.discard_partial(key).await,
            Backend::S3(store) => store.abort_uploads(key).await,
        }
    }

    /// One page of the objects under `prefix`, in key order, after `start_after`: at most
    /// `limit`. Sweeps page through the store with this, so a bucket of a million objects is
    /// never in memory at once.
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<ObjectInfo>> {
        match &self.backend {
            Backend::Local(store) => store.list_page(prefix, start_after, limit).await,
            Backend::S3(store) => store.list_page(prefix, start_after, limit).await,
        }
    }

    /// Every key under `prefix`, sorted (for tests and operators; it walks the whole store).
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::Local(store) => store.list(prefix).await,
            Backend::S3(store) => store.list(prefix).await,
        }
    }
}
