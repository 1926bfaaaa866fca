//! A minimal DER reader for the few structures read by hand (OCSP responses, a JKS key's
//! wrapping): definite lengths up to 4 bytes, every length checked against what is left.

/// One DER element: tag byte and contents; `rest` is what follows it.
pub(crate) fn element(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, b) = b.split_first().ok_or("truncated")?;
    let (&first, mut b) = b.split_first().ok_or("truncated")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return Err("bad length".into());
        }
        let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    if b.len() < len {
        return Err("truncated".into());
    }
    Ok((tag, &b[..len], &b[len..]))
}

/// An element that must carry `want` as its tag.
pub(crate) fn expect(b: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
    let (tag, v, rest) = element(b)?;
    if tag != want {
        return Err(format!("unexpected tag {tag:#04x}, wanted {want:#04x}"));
    }
    Ok((v, rest))
}

/// The whole encoding of the first element of `b` (tag, length and contents).
pub(crate) fn raw(b: &[u8]) -> Result<&[u8], String> {
    let (_, _, rest) = element(b)?;
    Ok(&b[..b.len() - rest.len()])
}

