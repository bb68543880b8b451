//! Row types shared by the metadata operations.

use serde::{Deserialize, Serialize};

use super::Error;

/// One stored piece of an object's bytes: a blob file and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub blob: String,
    pub size: u64,
}

impl Segment {
    /// Encodes segments as the `data` column: `blob:size,blob:size`.
    pub fn encode(segments: &[Segment]) -> String {
        let mut s = String::with_capacity(segments.len() * 48);
        for (i, seg) in segments.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&seg.blob);
            s.push(':');
            s.push_str(&seg.size.to_string());
        }
        s
    }

    /// Decodes the `data` column.
    pub fn decode(data: &str) -> Result<Vec<Segment>, Error> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        data.split(',')
            .map(|item| {
                let (blob, size) = item
                    .split_once(':')
                    .ok_or_else(|| Error::Corrupt(format!("segment {item:?}")))?;
                let size = size
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("segment size {item:?}")))?;
                Ok(Segment {
                    blob: blob.to_string(),
                    size,
                })
            })
            .collect()
    }
}

/// Object tags, in the order the client gave them.
pub type Tags = Vec<(String, String)>;

/// The HTTP headers S3 stores with an object and returns on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lowercased without the prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<(String, String)>,
}

/// Checksum algorithms S3 accepts in `x-amz-checksum-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

impl ChecksumAlgorithm {
    /// All algorithms, for scanning request headers.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The name used in `x-amz-checksum-algorithm` and XML.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The header that carries a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses an algorithm name case-insensitively.
    pub fn parse(s: &str) -> Option<ChecksumAlgorithm> {
        ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }
}

/// Whether a checksum covers the whole object or is a checksum of part checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    #[serde(rename = "COMPOSITE")]
    Composite,
}

impl ChecksumType {
    /// The name used in `x-amz-checksum-type` and XML.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }
}

/// A stored checksum: base64 value as S3 returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: ChecksumType,
}

/// Everything stored about one object.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Hex MD5 (or `md5-N` for multipart), without quotes.
    pub etag: String,
    pub last_modified: i64,
    pub segments: Vec<Segment>,
    /// The bytes are held in the database (`object_bytes`), not in blobs: small objects.
    pub inline: bool,
    pub parts_count: Option<u32>,
    pub headers: ObjectHeaders,
    pub checksum: Option<Checksum>,
    pub tags: Option<Tags>,
}

impl ObjectMeta {
    /// The ETag as it appears in headers and XML, with quotes.
    pub fn quoted_etag(&self) -> String {
        let mut q = String::with_capacity(self.etag.len() + 2);
        q.push('"');
        q.push_str(&self.etag);
        q.push('"');
        q
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, Error> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        let segs = vec![
            Segment {
                blob: "ab12".into(),
                size: 5,
            },
            Segment {
                blob: "cd34".into(),
                size: 0,
            },
        ];
        let enc = Segment::encode(&segs);
        assert_eq!(enc, "ab12:5,cd34:0");
        assert_eq!(Segment::decode(&enc).unwrap(), segs);
        assert!(Segment::decode("").unwrap().is_empty());
        assert!(Segment::decode("nosize").is_err());
    }
}
