//! zstd framing for blobs and metadata files, with a cheap escape for data that
//! does not compress (media, archives): those are stored raw.

use crate::error::{Error, Result};

pub const NONE: u8 = 0;
pub const ZSTD: u8 = 1;

thread_local! {
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static CCTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Returns (compression byte, payload). The payload is the zstd frame only when it
/// saves at least 1/32 of the size; otherwise the raw bytes are kept, which also
/// makes decompression free for incompressible data on restore.
pub fn compress_blob(data: &[u8], level: i32) -> (u8, Option<Vec<u8>>) {
    if data.len() < 64 || level == 0 {
        return (NONE, None);
    }
    if looks_incompressible(data) {
        return (NONE, None);
    }
    let out = CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            *c = Some((
                level,
                zstd::bulk::Compressor::new(level).expect("zstd compressor"),
            ));
        }
        let comp = &mut c.as_mut().unwrap().1;
        comp.compress(data)
            .expect("zstd compress into a growable buffer")
    });
    if out.len() + data.len() / 32 < data.len() {
        (ZSTD, Some(out))
    } else {
        (NONE, None)
    }
}

/// An entropy probe on a few samples: compressing 16 KiB at level 1 tells whether a
/// multi-MiB chunk of video or JPEG is worth a full level-3 pass.
fn looks_incompressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 4096;
    if data.len() < 8 * SAMPLE {
        return false;
    }
    let mut probe = Vec::with_capacity(4 * SAMPLE);
    for i in 0..4 {
        let start = (data.len() - SAMPLE) * i / 3;
        probe.extend_from_slice(&data[start..start + SAMPLE]);
    }
    match zstd::bulk::compress(&probe, 1) {
        Ok(c) => c.len() * 100 > probe.len() * 97,
        Err(_) => false,
    }
}

/// Decompresses a blob payload, refusing anything that would exceed `raw_len`.
pub fn decompress_blob(compression: u8, payload: Vec<u8>, raw_len: usize) -> Result<Vec<u8>> {
    match compression {
        NONE => Ok(payload),
        ZSTD => DCTX.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new().expect("zstd decompressor"));
            }
            // A context per thread: creating one per blob cost more than the decompression.
            d.as_mut()
                .unwrap()
                .decompress(&payload, raw_len)
                .map_err(|e| Error::format("blob", format!("zstd: {e}")))
        }),
        other => Err(Error::format(
            "blob",
            format!("unknown compression type {other}"),
        )),
    }
}

/// Metadata framing: tag byte (0 raw, 1 zstd) then the body.
pub fn frame_meta(body: &[u8]) -> Vec<u8> {
    if body.len() >= 256 {
        if let Ok(c) = zstd::bulk::compress(body, 3) {
            if c.len() < body.len() {
                let mut out = Vec::with_capacity(c.len() + 1);
                out.push(ZSTD);
                out.extend_from_slice(&c);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(NONE);
    out.extend_from_slice(body);
    out
}

pub fn unframe_meta(what: &'static str, framed: &[u8], max: usize) -> Result<Vec<u8>> {
    let (&tag, body) = framed
        .split_first()
        .ok_or_else(|| Error::format(what, "empty"))?;
    let out = match tag {
        NONE => body.to_vec(),
        ZSTD => zstd::bulk::decompress(body, max)
            .map_err(|e| Error::format(what, format!("zstd: {e}")))?,
        other => return Err(Error::format(what, format!("unknown framing tag {other}"))),
    };
    if out.len() > max {
        return Err(Error::format(
            what,
            format!("{} bytes exceed the limit {max}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_random_does_not() {
        let text = b"INSERT INTO t VALUES (1,'hello world');\n".repeat(2000);
        let (c, p) = compress_blob(&text, 3);
        assert_eq!(c, ZSTD);
        let back = decompress_blob(c, p.unwrap(), text.len()).unwrap();
        assert_eq!(back, text);
        let mut rnd = vec![0u8; 100_000];
        getrandom::fill(&mut rnd).unwrap();
        assert_eq!(compress_blob(&rnd, 3).0, NONE);
    }

    #[test]
    fn decompression_is_bounded() {
        let text = vec![b'a'; 100_000];
        let (_, p) = compress_blob(&text, 3);
        assert!(decompress_blob(ZSTD, p.unwrap(), 1000).is_err());
        let framed = frame_meta(&text);
        assert!(unframe_meta("x", &framed, 1000).is_err());
        assert_eq!(unframe_meta("x", &framed, 100_000).unwrap(), text);
        assert!(unframe_meta("x", &[9, 1, 2], 10).is_err());
    }
}
