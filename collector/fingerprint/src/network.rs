//! Recognisers for URLs, email addresses and IP addresses (v4 and v6, with a port).
//! Each returns the index just after what it recognised at `i`.

use super::parameterize::{boundary_at, count_while, digits};

/// `scheme://rest`, up to whitespace or a quote, without trailing punctuation.
pub(super) fn url(bytes: &[u8], i: usize) -> Option<usize> {
    let scheme = count_while(bytes, i, 32, |b| {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'.' || b == b'-'
    });
    if !bytes.get(i + scheme..)?.starts_with(b"://") {
        return None;
    }
    let start = i + scheme + 3;
    let rest = count_while(bytes, start, usize::MAX, |b| {
        !(b.is_ascii_whitespace()
            || b.is_ascii_control()
            || matches!(b, b'"' | b'\'' | b'<' | b'>'))
    });
    let mut end = start + rest;
    while end > start
        && matches!(
            bytes[end - 1],
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'}'
        )
    {
        end -= 1;
    }
    (end > start).then_some(end)
}

/// `local@domain.tld`.
pub(super) fn email(bytes: &[u8], i: usize) -> Option<usize> {
    let local = count_while(bytes, i, 64, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
    });
    if local == 0 || bytes.get(i + local) != Some(&b'@') {
        return None;
    }
    let start = i + local + 1;
    let domain = count_while(bytes, start, 255, |b| {
        b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
    });
    let mut end = start + domain;
    while end > start && matches!(bytes[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = bytes.get(start..end)?;
    let tld = domain.rsplit(|&b| b == b'.').next()?;
    let has_dot = domain.contains(&b'.');
    (has_dot
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && boundary_at(bytes, end))
    .then_some(end)
}

/// `10.0.3.7`, `10.0.3.7:443`.
pub(super) fn ipv4_with_port(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for part in 0..4 {
        if part > 0 {
            if bytes.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
        let n = digits(bytes, j, 4);
        if n == 0 || n > 3 {
            return None;
        }
        let value: u32 = bytes[j..j + n]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'));
        if value > 255 {
            return None;
        }
        j += n;
    }
    if bytes.get(j) == Some(&b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(with_port(bytes, j)).filter(|&end| boundary_at(bytes, end))
}

fn with_port(bytes: &[u8], j: usize) -> usize {
    if bytes.get(j) == Some(&b':') {
        let port = digits(bytes, j + 1, 6);
        if (1..=5).contains(&port) && boundary_at(bytes, j + 1 + port) {
            return j + 1 + port;
        }
    }
    j
}

/// `2001:db8::1`, `::1`, `fe80::1`, `[::1]:8080`, `::ffff:10.0.0.1`.
pub(super) fn ipv6_with_port(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes[i] == b'[' {
        let end = ipv6(bytes, i + 1)?;
        if bytes.get(end) != Some(&b']') {
            return None;
        }
        return Some(with_port(bytes, end + 1));
    }
    let end = ipv6(bytes, i)?;
    boundary_at(bytes, end).then_some(end)
}

fn ipv6(bytes: &[u8], i: usize) -> Option<usize> {
    let len = count_while(bytes, i, 45, |b| {
        b.is_ascii_hexdigit() || b == b':' || b == b'.'
    });
    let mut candidate = bytes.get(i..i + len)?;
    // A colon ending a sentence (`fe80::1: refused`) is not part of the address.
    if candidate.ends_with(b":") && !candidate.ends_with(b"::") {
        candidate = &candidate[..candidate.len() - 1];
    }
    if candidate.ends_with(b".") {
        return None;
    }
    let compressed = candidate.windows(2).filter(|w| w == b"::").count();
    if compressed > 1 || candidate.windows(3).any(|w| w == b":::") {
        return None;
    }
    let last = candidate.iter().filter(|&&b| b == b':').count();
    let mut filled = 0;
    for (n, group) in candidate.split(|&b| b == b':').enumerate() {
        if group.is_empty() {
            continue;
        }
        if n == last && group.contains(&b'.') {
            // An embedded IPv4 address counts as two groups.
            ipv4_with_port(group, 0).filter(|&end| end == group.len())?;
            filled += 2;
        } else if group.len() <= 4 && group.iter().all(u8::is_ascii_hexdigit) {
            filled += 1;
        } else {
            return None;
        }
    }
    let valid = if compressed == 1 {
        filled < 8
    } else {
        filled == 8
    };
    // `dead::beef` reads like a path more than an address: require a digit.
    let has_digit = candidate.iter().any(u8::is_ascii_digit);
    (valid && has_digit && filled >= 1).then_some(i + candidate.len())
}
