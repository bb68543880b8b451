//! Hashing of object bodies while they are written: the MD5 for the ETag, the SHA-256
//! of a signed payload, and the `x-amz-checksum-*` algorithm the client chose.

use crate::md5::Md5;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::Sha1;
use sha2::Digest as _;
use sha2::Sha256;

use crate::meta::ChecksumAlgorithm;

/// Running state of one checksum algorithm.
pub enum Running {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Running {
    /// Starts a checksum of `algorithm`.
    pub fn new(algorithm: ChecksumAlgorithm) -> Running {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Running::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Running::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Running::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Running::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Running::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Running::Crc32(h) => h.update(data),
            Running::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Running::Crc64Nvme(d) => d.write(data),
            Running::Sha1(h) => h.update(data),
            Running::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest bytes (big-endian for CRCs, as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Running::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Running::Crc32c(c) => c.to_be_bytes().to_vec(),
            Running::Crc64Nvme(d) => d.sum64().to_be_bytes().to_vec(),
            Running::Sha1(h) => h.finalize().to_vec(),
            Running::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Everything computed over a body as it streams to disk.
pub struct BodyHashers {
    /// `None` only in the halves of a [`split`](crate::storage::Observer::split) that
    /// do not hash MD5, until they are joined again.
    md5: Option<Md5>,
    /// SHA-256 of the payload, when the signature covers it.
    payload_sha256: Option<Sha256>,
    checksum: Option<(ChecksumAlgorithm, Running)>,
}

/// Final digests of a body.
pub struct BodyDigests {
    pub md5: [u8; 16],
    pub payload_sha256: Option<[u8; 32]>,
    /// The requested checksum as (algorithm, base64 value).
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

impl BodyHashers {
    /// Hashers for MD5, plus the payload SHA-256 and a checksum when asked.
    pub fn new(payload_sha256: bool, checksum: Option<ChecksumAlgorithm>) -> BodyHashers {
        BodyHashers {
            md5: Some(Md5::new()),
            payload_sha256: payload_sha256.then(Sha256::new),
            checksum: checksum.map(|a| (a, Running::new(a))),
        }
    }

    /// Feeds a chunk to every hasher.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.payload_sha256 {
            h.update(data);
        }
        if let Some((_, r)) = &mut self.checksum {
            r.update(data);
        }
    }

    /// Finishes every hasher.
    pub fn finish(self) -> BodyDigests {
        BodyDigests {
            md5: self.md5.unwrap_or_default().finalize(),
            payload_sha256: self.payload_sha256.map(|h| h.finalize().into()),
            checksum: self.checksum.map(|(a, r)| (a, B64.encode(r.finish()))),
        }
    }
}

/// The composite checksum of a multipart object: the checksum of the concatenated
/// binary part checksums, suffixed `-N`. `None` if a part lacks a valid value.
pub fn composite(algorithm: ChecksumAlgorithm, part_values: &[Option<String>]) -> Option<String> {
    let mut running = Running::new(algorithm);
    for v in part_values {
        let raw = B64.decode(v.as_deref()?).ok()?;
        running.update(&raw);
    }
    Some(format!(
        "{}-{}",
        B64.encode(running.finish()),
        part_values.len()
    ))
}

/// The full-object CRC of a multipart object, combined from part CRCs and sizes,
/// for the algorithms whose CRCs can be combined without the data.
pub fn combined_crc(
    algorithm: ChecksumAlgorithm,
    parts: &[(Option<String>, u64)],
) -> Option<String> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => {
            let mut acc: Option<crc32fast::Hasher> = None;
            for (v, len) in parts {
                let crc = u32::from_be_bytes(B64.decode(v.as_deref()?).ok()?.try_into().ok()?);
                let h = crc32fast::Hasher::new_with_initial_len(crc, *len);
                match &mut acc {
                    None => acc = Some(h),
                    Some(a) => a.combine(&h),
                }
            }
            acc.map(|a| B64.encode(a.finalize().to_be_bytes()))
        }
        ChecksumAlgorithm::Crc32c => {
            let mut acc: Option<u32> = None;
            for (v, len) in parts {
                let crc = u32::from_be_bytes(B64.decode(v.as_deref()?).ok()?.try_into().ok()?);
                acc = Some(match acc {
                    None => crc,
                    Some(a) => crc32c::crc32c_combine(a, crc, usize::try_from(*len).ok()?),
                });
            }
            acc.map(|a| B64.encode(a.to_be_bytes()))
        }
        ChecksumAlgorithm::Crc64Nvme => {
            let mut acc: Option<u64> = None;
            for (v, len) in parts {
                let crc = u64::from_be_bytes(B64.decode(v.as_deref()?).ok()?.try_into().ok()?);
                acc = Some(match acc {
                    None => crc,
                    Some(a) => crc64_combine(a, crc, *len, CRC64_NVME_POLY.reverse_bits()),
                });
            }
            acc.map(|a| B64.encode(a.to_be_bytes()))
        }
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// The CRC-64/NVME polynomial (normal form).
const CRC64_NVME_POLY: u64 = 0xAD93_D235_94C9_3659;

/// Multiplies a GF(2) 64x64 matrix (one column per bit) by a vector.
fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 != 0 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(mat: &[u64; 64]) -> [u64; 64] {
    let mut out = [0u64; 64];
    for (n, col) in out.iter_mut().enumerate() {
        *col = gf2_times(mat, mat[n]);
    }
    out
}

/// The CRC of `A ‖ B` from `crc(A)`, `crc(B)` and `len(B)` for a reflected 64-bit CRC
/// whose init and xorout are all ones (as CRC-64/NVME): `crc(A)` is advanced over
/// `len(B)` zero bytes with the "append zeros" operator, built by repeated squaring
/// (the method of zlib's `crc32_combine`, widened to 64 bits).
fn crc64_combine(crc1: u64, crc2: u64, len2: u64, reflected_poly: u64) -> u64 {
    if len2 == 0 {
        return crc1;
    }
    // Operator for one zero bit.
    let mut odd = [0u64; 64];
    odd[0] = reflected_poly;
    for (n, col) in odd.iter_mut().enumerate().skip(1) {
        *col = 1u64 << (n - 1);
    }
    let mut even = gf2_square(&odd); // two zero bits
    odd = gf2_square(&even); // four zero bits
    let (mut crc1, mut len2) = (crc1, len2);
    loop {
        even = gf2_square(&odd); // first pass: one zero byte
        if len2 & 1 != 0 {
            crc1 = gf2_times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        odd = gf2_square(&even);
        if len2 & 1 != 0 {
            crc1 = gf2_times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

impl crate::storage::Observer for BodyHashers {
    fn observe(&mut self, data: &[u8]) {
        self.update(data);
    }

    /// MD5 goes to a thread of its own: it is the most expensive hash (about three times
    /// SHA-256 with the CPU's SHA extensions, which the writing thread keeps) and cannot
    /// itself be parallelized.
    fn split(&mut self) -> Option<BodyHashers> {
        Some(BodyHashers {
            md5: Some(self.md5.take()?),
            payload_sha256: None,
            checksum: None,
        })
    }

    fn join(&mut self, other: BodyHashers) {
        if other.md5.is_some() {
            self.md5 = other.md5;
        }
    }
}

/// Decodes a base64 Content-MD5 / checksum header value for comparison.
pub fn decode_b64(value: &str) -> Option<Vec<u8>> {
    B64.decode(value.trim()).ok()
}

/// Encodes bytes as base64.
pub fn encode_b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_shot(a: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = BodyHashers::new(false, Some(a));
        h.update(data);
        h.finish().checksum.map(|c| c.1).unwrap_or_default()
    }

    #[test]
    fn known_answers() {
        // Values as S3 reports them for the body "hello world".
        assert_eq!(
            one_shot(ChecksumAlgorithm::Crc32, b"hello world"),
            "DUoRhQ=="
        );
        assert_eq!(
            one_shot(ChecksumAlgorithm::Crc32c, b"hello world"),
            "yZRlqg=="
        );
        assert_eq!(
            one_shot(ChecksumAlgorithm::Sha256, b"hello world"),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert_eq!(
            one_shot(ChecksumAlgorithm::Sha1, b"hello world"),
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
        );
        let mut h = BodyHashers::new(false, None);
        h.update(b"hello world");
        assert_eq!(
            hex::encode(h.finish().md5),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
    }

    #[test]
    fn crc64_combine_matches_whole_for_many_splits() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = one_shot(ChecksumAlgorithm::Crc64Nvme, &data);
        for cut in [0usize, 1, 7, 8, 100, 4096, 4999, 5000] {
            let (a, b) = data.split_at(cut);
            let parts = [
                (
                    Some(one_shot(ChecksumAlgorithm::Crc64Nvme, a)),
                    a.len() as u64,
                ),
                (
                    Some(one_shot(ChecksumAlgorithm::Crc64Nvme, b)),
                    b.len() as u64,
                ),
            ];
            assert_eq!(
                combined_crc(ChecksumAlgorithm::Crc64Nvme, &parts).as_deref(),
                Some(whole.as_str()),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn combined_crc_matches_whole() {
        let (a, b) = (b"hello ".as_slice(), b"world".as_slice());
        for algo in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let parts = [
                (Some(one_shot(algo, a)), a.len() as u64),
                (Some(one_shot(algo, b)), b.len() as u64),
            ];
            assert_eq!(
                combined_crc(algo, &parts),
                Some(one_shot(algo, b"hello world"))
            );
        }
    }
}
