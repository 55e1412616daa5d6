//! The S3 backend of the object store (production, or any S3-compatible server): objects
//! under an optional key prefix in one bucket, uploaded in parts of [`PART_SIZE`].

use std::path::Path;

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

use super::PutError;
use crate::config::S3Settings;

/// Size of one part of an S3 multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Objects in `bucket`, under `prefix`.
#[derive(Clone, Debug)]
pub(super) struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub(super) fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        Ok(Self {
            client: s3_client(settings)?,
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        })
    }

    pub(super) async fn ping(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await?;
        Ok(())
    }

    pub(super) async fn put<S>(
        &self,
        key: &str,
        content_type: &str,
        body: S,
        limit: u64,
    ) -> Result<u64, PutError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
    {
        let key = self.full_key(key);
        put_s3(&self.client, &self.bucket, &key, content_type, body, limit).await
    }

    pub(super) async fn read(&self, key: &str) -> anyhow::Result<Bytes> {
        Ok(self
            .body(key)
            .await?
            .collect()
            .await
            .with_context(|| format!("reading object {key}"))?
            .into_bytes())
    }

    pub(super) async fn download(&self, key: &str, to: &Path) -> anyhow::Result<u64> {
        let mut reader = self.body(key).await?.into_async_read();
        let mut file = tokio::fs::File::create(to).await?;
        let copied = tokio::io::copy(&mut reader, &mut file).await?;
        file.flush().await?;
        Ok(copied)
    }

    pub(super) async fn reader(&self, key: &str) -> anyhow::Result<(u64, super::ObjectReader)> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .with_context(|| format!("fetching object {key}"))?;
        let size = object.content_length.unwrap_or(0).max(0) as u64;
        Ok((size, Box::pin(object.body.into_async_read())))
    }

    pub(super) async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .with_context(|| format!("deleting object {key}"))?;
        Ok(())
    }

    /// Aborts the multipart uploads to `key` that were never completed (S3 bills for them).
    pub(super) async fn abort_uploads(&self, key: &str) -> anyhow::Result<()> {
        let full = self.full_key(key);
        let uploads = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&full)
            .send()
            .await
            .with_context(|| format!("listing multipart uploads of {key}"))?;
        for upload in uploads.uploads() {
            if upload.key() != Some(full.as_str()) {
                continue;
            }
            if let Some(id) = upload.upload_id() {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(id)
                    .send()
                    .await
                    .with_context(|| format!("aborting a multipart upload of {key}"))?;
            }
        }
        Ok(())
    }

    pub(super) async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let full = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
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

    /// The object's size, from `HeadObject`; `None` when there is no such object.
    pub(super) async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(anyhow::Error::new(err).context(format!("reading the size of {key}"))),
        }
    }

    /// One page of `ListObjectsV2`: at most `limit` objects after `start_after`.
    pub(super) async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<super::ObjectInfo>> {
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .max_keys(limit.min(1000) as i32);
        if let Some(after) = start_after {
            request = request.start_after(self.full_key(after));
        }
        let page = request.send().await.context("listing objects")?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|object| {
                let key = object.key()?;
                Some(super::ObjectInfo {
                    key: key[strip.min(key.len())..].to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    modified_ms: object
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                })
            })
            .collect())
    }

    /// The body of an object, still streaming.
    async fn body(&self, key: &str) -> anyhow::Result<ByteStream> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .with_context(|| format!("fetching object {key}"))?;
        Ok(object.body)
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
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
