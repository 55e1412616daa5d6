//! The object store: where uploaded session audio lives, on local disk (embedded) or in S3
//! (production, or any S3-compatible server).
//!
//! Uploads are streamed: the local backend writes a `.partial` file and renames it when
//! complete; the S3 backend sends parts of [`PART_SIZE`] through a multipart upload (one
//! `PutObject` for small objects), so memory stays bounded by one part whatever the size.
//! A failed or oversized upload leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::Context;
use aws_sdk_s3::{
    config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation},
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;

use crate::config::{S3Settings, Settings, StorageBackend};

/// Size of one part of an S3 multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

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

/// A connected object store; cheap to clone.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

impl ObjectStore {
    /// Builds the store from `STORAGE_URL` (creating the local directory if needed).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let backend = match &settings.storage {
            StorageBackend::Local(root) => {
                tokio::fs::create_dir_all(root).await.with_context(|| {
                    format!("creating the storage directory {}", root.display())
                })?;
                Backend::Local { root: root.clone() }
            }
            StorageBackend::S3(s3) => Backend::S3 {
                client: s3_client(s3)?,
                bucket: s3.bucket.clone(),
                prefix: s3.prefix.clone(),
            },
        };
        Ok(Self { backend })
    }

    /// Checks the store is reachable (for `/ready`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Local { root } => {
                tokio::fs::metadata(root).await?;
                Ok(())
            }
            Backend::S3 { client, bucket, .. } => {
                client.head_bucket().bucket(bucket).send().await?;
                Ok(())
            }
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
            Backend::Local { root } => put_local(&root.join(key), body, limit).await,
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = full_key(prefix, key);
                put_s3(client, bucket, &key, content_type, body, limit).await
            }
        }
    }

    /// The object at `key`, in memory (for objects known to be small).
    pub async fn read(&self, key: &str) -> anyhow::Result<Bytes> {
        match &self.backend {
            Backend::Local { root } => Ok(tokio::fs::read(root.join(key))
                .await
                .with_context(|| format!("reading object {key}"))?
                .into()),
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => Ok(s3_body(client, bucket, prefix, key)
                .await?
                .collect()
                .await
                .with_context(|| format!("reading object {key}"))?
                .into_bytes()),
        }
    }

    /// Copies the object at `key` into a local file (the worker decodes from disk).
    pub async fn download(&self, key: &str, to: &Path) -> anyhow::Result<u64> {
        match &self.backend {
            Backend::Local { root } => Ok(tokio::fs::copy(root.join(key), to)
                .await
                .with_context(|| format!("reading object {key}"))?),
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let mut reader = s3_body(client, bucket, prefix, key)
                    .await?
                    .into_async_read();
                let mut file = tokio::fs::File::create(to).await?;
                let copied = tokio::io::copy(&mut reader, &mut file).await?;
                file.flush().await?;
                Ok(copied)
            }
        }
    }

    /// Removes the object at `key`; removing a missing object is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Local { root } => remove_if_exists(&root.join(key)).await,
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(full_key(prefix, key))
                    .send()
                    .await
                    .with_context(|| format!("deleting object {key}"))?;
                Ok(())
            }
        }
    }

    /// Removes whatever an abandoned upload to `key` left: the object, a local `.partial`
    /// file, or S3 multipart uploads that were never completed (which S3 bills for).
    pub async fn discard(&self, key: &str) -> anyhow::Result<()> {
        self.delete(key).await?;
        match &self.backend {
            Backend::Local { root } => remove_if_exists(&partial_path(&root.join(key))).await,
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = full_key(prefix, key);
                let uploads = client
                    .list_multipart_uploads()
                    .bucket(bucket)
                    .prefix(&full)
                    .send()
                    .await
                    .with_context(|| format!("listing multipart uploads of {key}"))?;
                for upload in uploads.uploads() {
                    if upload.key() != Some(full.as_str()) {
                        continue;
                    }
                    if let Some(id) = upload.upload_id() {
                        client
                            .abort_multipart_upload()
                            .bucket(bucket)
                            .key(&full)
                            .upload_id(id)
                            .send()
                            .await
                            .with_context(|| format!("aborting a multipart upload of {key}"))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Every key under `prefix`, sorted (for tests and operators; it walks the whole store).
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::Local { root } => {
                let mut keys = Vec::new();
                let mut dirs = vec![root.clone()];
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
            Backend::S3 {
                client,
                bucket,
                prefix: base,
            } => {
                let full = full_key(base, prefix);
                let strip = if base.is_empty() { 0 } else { base.len() + 1 };
                let mut keys = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(full)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    for object in page?.contents() {
                        if let Some(key) = object.key() {
                            keys.push(key[strip.min(key.len())..].to_owned());
                        }
                    }
                }
                keys.sort();
                Ok(keys)
            }
        }
    }
}

/// The body of an S3 object, still streaming.
async fn s3_body(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    key: &str,
) -> anyhow::Result<ByteStream> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(full_key(prefix, key))
        .send()
        .await
        .with_context(|| format!("fetching object {key}"))?;
    Ok(object.body)
}

/// Where the local backend writes an object while it streams in.
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

fn full_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

fn s3_client(s3: &S3Settings) -> anyhow::Result<aws_sdk_s3::Client> {
    let (Some(key_id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) else {
        anyhow::bail!(
            "STORAGE_URL=s3://... needs S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY \
             (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        );
    };
    let credentials = Credentials::new(
        key_id.clone(),
        secret.expose_secret().to_owned(),
        None,
        None,
        "tend-settings",
    );
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new(s3.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(s3.force_path_style)
        // S3-compatible servers do not all speak the newer default checksums.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = &s3.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(aws_sdk_s3::Client::from_conf(config.build()))
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

async fn put_s3<S>(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    mut body: S,
    limit: u64,
) -> Result<u64, PutError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    let store_err = |e: anyhow::Error| PutError::Store(e);
    let mut size = 0u64;
    let mut buffer = BytesMut::with_capacity(PART_SIZE);
    // Fill the first part: a small object goes up in one request.
    let mut ended = fill_part(&mut body, &mut buffer, &mut size, limit).await?;
    if ended {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(buffer.freeze()))
            .send()
            .await
            .map_err(|e| store_err(anyhow::Error::new(e).context("PutObject")))?;
        return Ok(size);
    }

    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .send()
        .await
        .map_err(|e| store_err(anyhow::Error::new(e).context("CreateMultipartUpload")))?;
    let upload_id = upload
        .upload_id()
        .ok_or_else(|| store_err(anyhow::anyhow!("CreateMultipartUpload gave no upload id")))?
        .to_owned();
    let result = async {
        let mut parts = Vec::new();
        loop {
            // Send a full part, keep the overflow for the next one.
            let rest = if buffer.len() > PART_SIZE {
                buffer.split_off(PART_SIZE)
            } else {
                BytesMut::new()
            };
            let part = std::mem::replace(&mut buffer, rest).freeze();
            if !part.is_empty() {
                let number = parts.len() as i32 + 1;
                let sent = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| store_err(anyhow::Error::new(e).context("UploadPart")))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(sent.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            if ended && buffer.is_empty() {
                break;
            }
            if !ended {
                ended = fill_part(&mut body, &mut buffer, &mut size, limit).await?;
            }
        }
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_err(anyhow::Error::new(e).context("CompleteMultipartUpload")))?;
        Ok(size)
    }
    .await;
    if result.is_err() {
        let aborted = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(err) = aborted {
            tracing::warn!(error = %err, "could not abort a failed multipart upload");
        }
    }
    result
}

/// Reads `body` into `buffer` until it holds a part or the body ends (then true), counting
/// `size` against `limit`.
async fn fill_part<S>(
    body: &mut S,
    buffer: &mut BytesMut,
    size: &mut u64,
    limit: u64,
) -> Result<bool, PutError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    while buffer.len() < PART_SIZE {
        let Some(chunk) = body.next().await else {
            return Ok(true);
        };
        let chunk = chunk.map_err(PutError::Body)?;
        *size += chunk.len() as u64;
        if *size > limit {
            return Err(PutError::TooLarge { limit });
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(false)
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
        let store = ObjectStore {
            backend: Backend::Local { root: dir.clone() },
        };
        let size = store
            .put(
                "a/b.bin",
                "application/octet-stream",
                chunks(&[10, 20]),
                100,
            )
            .await
            .unwrap();
        assert_eq!(size, 30);
        assert_eq!(store.list("a/").await.unwrap(), ["a/b.bin"]);

        let err = store
            .put(
                "a/c.bin",
                "application/octet-stream",
                chunks(&[60, 60]),
                100,
            )
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
