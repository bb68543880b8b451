//! S3 XML documents: request bodies we parse and response bodies we write, with serde
//! and quick-xml. Element names follow the S3 API reference exactly.
#![allow(non_snake_case)] // field names are the XML element names

use serde::{Deserialize, Serialize};

use super::error::{Code, S3Error};

/// The S3 XML namespace.
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for an XML element body or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Serializes a response document with the XML declaration.
pub fn to_xml<T: Serialize>(doc: &T) -> Result<String, S3Error> {
    let body = quick_xml::se::to_string(doc).map_err(S3Error::internal)?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    ))
}

/// Parses a request body; anything malformed is `MalformedXML`.
pub fn from_xml<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::new(Code::MalformedXML))?;
    quick_xml::de::from_str(text).map_err(|_| S3Error::new(Code::MalformedXML))
}

// ---- request bodies ----

/// CreateBucket body.
#[derive(Debug, Deserialize, Default)]
pub struct CreateBucketConfiguration {
    #[serde(default)]
    pub LocationConstraint: Option<String>,
}

/// DeleteObjects body.
#[derive(Debug, Deserialize)]
pub struct Delete {
    #[serde(default)]
    pub Quiet: Option<bool>,
    #[serde(default)]
    pub Object: Vec<ObjectIdentifier>,
}

/// One key of a DeleteObjects body.
#[derive(Debug, Deserialize)]
pub struct ObjectIdentifier {
    pub Key: String,
    #[serde(default)]
    pub VersionId: Option<String>,
}

/// CompleteMultipartUpload body.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(default)]
    pub Part: Vec<CompletedPart>,
}

/// One part of a CompleteMultipartUpload body.
#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    pub PartNumber: u32,
    pub ETag: String,
    #[serde(default)]
    pub ChecksumCRC32: Option<String>,
    #[serde(default)]
    pub ChecksumCRC32C: Option<String>,
    #[serde(default)]
    pub ChecksumCRC64NVME: Option<String>,
    #[serde(default)]
    pub ChecksumSHA1: Option<String>,
    #[serde(default)]
    pub ChecksumSHA256: Option<String>,
}

/// PutObjectTagging body and GetObjectTagging response.
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct Tagging {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    pub xmlns: &'static str,
    pub TagSet: TagSet,
}

/// A tag list.
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct TagSet {
    #[serde(default)]
    pub Tag: Vec<Tag>,
}

/// One tag.
#[derive(Debug, Deserialize, Serialize)]
pub struct Tag {
    pub Key: String,
    pub Value: String,
}

// ---- response bodies ----

/// The owner shown in listings.
#[derive(Debug, Serialize, Clone)]
pub struct Owner {
    pub ID: String,
    pub DisplayName: String,
}

/// ListBuckets response.
#[derive(Debug, Serialize)]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Owner: Owner,
    pub Buckets: Buckets,
}

/// The bucket list of ListBuckets.
#[derive(Debug, Serialize)]
pub struct Buckets {
    pub Bucket: Vec<BucketEntry>,
}

/// One bucket of ListBuckets.
#[derive(Debug, Serialize)]
pub struct BucketEntry {
    pub Name: String,
    pub CreationDate: String,
}

/// GetBucketLocation response.
#[derive(Debug, Serialize)]
pub struct LocationConstraint {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "$text")]
    pub region: String,
}

/// GetBucketVersioning response (never enabled here).
#[derive(Debug, Serialize)]
pub struct VersioningConfiguration {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
}

/// One object of a listing.
#[derive(Debug, Serialize)]
pub struct Contents {
    pub Key: String,
    pub LastModified: String,
    pub ETag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ChecksumAlgorithm: Option<String>,
    pub Size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Owner: Option<Owner>,
    pub StorageClass: &'static str,
}

/// A common prefix of a delimited listing.
#[derive(Debug, Serialize)]
pub struct CommonPrefix {
    pub Prefix: String,
}

/// ListObjects (v1) response.
#[derive(Debug, Serialize)]
#[serde(rename = "ListBucketResult")]
pub struct ListBucketResultV1 {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Name: String,
    pub Prefix: String,
    pub Marker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextMarker: Option<String>,
    pub MaxKeys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Delimiter: Option<String>,
    pub IsTruncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub EncodingType: Option<String>,
    pub Contents: Vec<Contents>,
    pub CommonPrefixes: Vec<CommonPrefix>,
}

/// ListObjectsV2 response.
#[derive(Debug, Serialize)]
#[serde(rename = "ListBucketResult")]
pub struct ListBucketResultV2 {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Name: String,
    pub Prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub StartAfter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ContinuationToken: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextContinuationToken: Option<String>,
    pub KeyCount: usize,
    pub MaxKeys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Delimiter: Option<String>,
    pub IsTruncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub EncodingType: Option<String>,
    pub Contents: Vec<Contents>,
    pub CommonPrefixes: Vec<CommonPrefix>,
}

/// One version of ListObjectVersions.
#[derive(Debug, Serialize)]
pub struct Version {
    pub Key: String,
    pub VersionId: &'static str,
    pub IsLatest: bool,
    pub LastModified: String,
    pub ETag: String,
    pub Size: u64,
    pub Owner: Owner,
    pub StorageClass: &'static str,
}

/// ListObjectVersions response.
#[derive(Debug, Serialize)]
pub struct ListVersionsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Name: String,
    pub Prefix: String,
    pub KeyMarker: String,
    pub VersionIdMarker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextKeyMarker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextVersionIdMarker: Option<&'static str>,
    pub MaxKeys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Delimiter: Option<String>,
    pub IsTruncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub EncodingType: Option<String>,
    pub Version: Vec<Version>,
    pub CommonPrefixes: Vec<CommonPrefix>,
}

/// Declares a response struct that ends with the optional `Checksum*` elements, and a
/// `with_checksum` method to fill them from a stored checksum.
macro_rules! with_checksum_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Default)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumCRC32: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumCRC32C: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumCRC64NVME: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumSHA1: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumSHA256: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ChecksumType: Option<&'static str>,
        }

        impl $name {
            /// Sets the element of the checksum's algorithm and its type.
            pub fn with_checksum(mut self, c: Option<&crate::meta::Checksum>) -> Self {
                use crate::meta::ChecksumAlgorithm as A;
                if let Some(c) = c {
                    let v = Some(c.value.clone());
                    match c.algorithm {
                        A::Crc32 => self.ChecksumCRC32 = v,
                        A::Crc32c => self.ChecksumCRC32C = v,
                        A::Crc64Nvme => self.ChecksumCRC64NVME = v,
                        A::Sha1 => self.ChecksumSHA1 = v,
                        A::Sha256 => self.ChecksumSHA256 = v,
                    }
                    self.ChecksumType = Some(c.kind.name());
                }
                self
            }
        }
    };
}

with_checksum_fields! {
/// CopyObject response.
#[derive(Debug, Serialize)]
pub struct CopyObjectResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub ETag: String,
    pub LastModified: String,
}
}

/// PostObject response with `success_action_status=201` (no namespace, as S3 sends it).
#[derive(Debug, Serialize)]
pub struct PostResponse {
    pub Location: String,
    pub Bucket: String,
    pub Key: String,
    pub ETag: String,
}

/// UploadPartCopy response.
#[derive(Debug, Serialize)]
pub struct CopyPartResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub ETag: String,
    pub LastModified: String,
}

/// CreateMultipartUpload response.
#[derive(Debug, Serialize)]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Bucket: String,
    pub Key: String,
    pub UploadId: String,
}

with_checksum_fields! {
/// CompleteMultipartUpload response.
#[derive(Debug, Serialize)]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Location: String,
    pub Bucket: String,
    pub Key: String,
    pub ETag: String,
}
}

with_checksum_fields! {
/// One part of ListParts.
#[derive(Debug, Serialize)]
pub struct PartEntry {
    pub PartNumber: u32,
    pub LastModified: String,
    pub ETag: String,
    pub Size: u64,
}
}

/// ListParts response.
#[derive(Debug, Serialize)]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Bucket: String,
    pub Key: String,
    pub UploadId: String,
    pub Initiator: Owner,
    pub Owner: Owner,
    pub StorageClass: &'static str,
    pub PartNumberMarker: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextPartNumberMarker: Option<u32>,
    pub MaxParts: usize,
    pub IsTruncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ChecksumAlgorithm: Option<&'static str>,
    pub Part: Vec<PartEntry>,
}

/// One upload of ListMultipartUploads.
#[derive(Debug, Serialize)]
pub struct UploadEntry {
    pub Key: String,
    pub UploadId: String,
    pub Initiator: Owner,
    pub Owner: Owner,
    pub StorageClass: &'static str,
    pub Initiated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ChecksumAlgorithm: Option<&'static str>,
}

/// ListMultipartUploads response.
#[derive(Debug, Serialize)]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Bucket: String,
    pub KeyMarker: String,
    pub UploadIdMarker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextKeyMarker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub NextUploadIdMarker: Option<String>,
    pub Prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Delimiter: Option<String>,
    pub MaxUploads: usize,
    pub IsTruncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub EncodingType: Option<String>,
    pub Upload: Vec<UploadEntry>,
    pub CommonPrefixes: Vec<CommonPrefix>,
}

/// DeleteObjects response.
#[derive(Debug, Serialize)]
pub struct DeleteResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub Deleted: Vec<DeletedEntry>,
    pub Error: Vec<DeleteErrorEntry>,
}

/// A deleted key.
#[derive(Debug, Serialize)]
pub struct DeletedEntry {
    pub Key: String,
}

/// A key that could not be deleted.
#[derive(Debug, Serialize)]
pub struct DeleteErrorEntry {
    pub Key: String,
    pub Code: &'static str,
    pub Message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_list_buckets() {
        let doc = ListAllMyBucketsResult {
            xmlns: NS,
            Owner: Owner {
                ID: "tarn".into(),
                DisplayName: "tarn".into(),
            },
            Buckets: Buckets {
                Bucket: vec![BucketEntry {
                    Name: "raw".into(),
                    CreationDate: "2026-01-02T03:04:05.000Z".into(),
                }],
            },
        };
        assert_eq!(
            to_xml(&doc).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>tarn</ID><DisplayName>tarn</DisplayName></Owner><Buckets><Bucket><Name>raw</Name><CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"
        );
    }

    #[test]
    fn golden_location_and_escaping() {
        let doc = LocationConstraint {
            xmlns: NS,
            region: "eu-west-1".into(),
        };
        assert!(to_xml(&doc).unwrap().ends_with(
            "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">eu-west-1</LocationConstraint>"
        ));
        let d = DeletedEntry {
            Key: "a<&>b".into(),
        };
        assert_eq!(
            quick_xml::se::to_string(&d).unwrap(),
            "<DeletedEntry><Key>a&lt;&amp;&gt;b</Key></DeletedEntry>"
        );
    }

    #[test]
    fn golden_post_response() {
        let doc = PostResponse {
            Location: "http://h/b/a%20b".into(),
            Bucket: "b".into(),
            Key: "a b".into(),
            ETag: "\"e\"".into(),
        };
        assert_eq!(
            to_xml(&doc).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>http://h/b/a%20b</Location><Bucket>b</Bucket><Key>a b</Key><ETag>\"e\"</ETag></PostResponse>"
        );
    }

    #[test]
    fn parses_delete_and_complete() {
        let d: Delete = from_xml(
            b"<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet><Object><Key>a b</Key></Object><Object><Key>c&amp;d</Key></Object></Delete>",
        )
        .unwrap();
        assert_eq!(d.Quiet, Some(true));
        assert_eq!(d.Object.len(), 2);
        assert_eq!(d.Object[1].Key, "c&d");
        let c: CompleteMultipartUpload = from_xml(
            b"<CompleteMultipartUpload><Part><ETag>\"x\"</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        )
        .unwrap();
        assert_eq!(c.Part[0].PartNumber, 1);
        assert!(from_xml::<Delete>(b"<Delete><Object>").is_err());
        assert!(from_xml::<CompleteMultipartUpload>(b"not xml").is_err());
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn request_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = from_xml::<Delete>(&body);
                let _ = from_xml::<CompleteMultipartUpload>(&body);
                let _ = from_xml::<Tagging>(&body);
                let _ = from_xml::<CreateBucketConfiguration>(&body);
            }

            #[test]
            fn xmlish_input_never_panics(s in "(<[A-Za-z]{0,8}>|</[A-Za-z]{0,8}>|[a-z0-9&;\"]{0,6}){0,30}") {
                let _ = from_xml::<Delete>(s.as_bytes());
                let _ = from_xml::<CompleteMultipartUpload>(s.as_bytes());
                let _ = from_xml::<Tagging>(s.as_bytes());
            }
        }
    }
}
