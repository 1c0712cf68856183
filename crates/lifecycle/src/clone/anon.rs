//! The anonymising transforms. Every one that must stay joinable is a function of the
//! original value and the clone key alone (HMAC-SHA256), so the same e-mail becomes the
//! same fake e-mail in every system of one clone, and a clone under another key cannot
//! be linked to it.

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;
use std::sync::LazyLock;

/// The domain of every fake e-mail address: reserved (RFC 2606), so a fake can never
/// reach anyone, and the scan can tell a fake from an original.
pub const FAKE_EMAIL_DOMAIN: &str = "anon.invalid";
/// Every fake phone number starts so (the 555-01xx block is reserved for fiction).
pub const FAKE_PHONE_PREFIX: &str = "+1-555-01";
/// Values shorter than this are not tracked by the scan (a two-letter code cannot name
/// anyone, and would match everywhere).
pub const MIN_TRACKED: usize = 4;

/// E-mail addresses inside text.
pub static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // Local parts and domains in any script, a quoted local part, a domain without a dot
    // (an intranet host) or an address literal; a domain whose last label has no letter
    // ("lodash@4.17.21") is a version, not an address.
    Regex::new(
        r#"(?:"[^"\r\n]{1,64}"|[\w.%+'\-]+)@(?:\[[0-9A-Fa-f.:]+\]|(?:[\w\-]+\.)*[\w\-]*[^\W\d_][\w\-]*)"#,
    )
        .unwrap_or_else(|_| never())
});
/// Phone numbers inside text (international or North American forms, 9 to 15 digits).
pub static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\d[\d\-\s().]{7,}\d").unwrap_or_else(|_| never()));

fn never() -> Regex {
    // The patterns above are literals checked by the unit tests; this is unreachable.
    Regex::new("$^").expect("a trivial regex compiles")
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Margaret",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Sophie",
    "John",
    "Katherine",
    "Niklaus",
    "Joan",
    "Bjarne",
    "Annie",
    "Guido",
    "Mary",
    "Leslie",
    "Shafi",
    "Robin",
    "Jean",
    "Vint",
    "Lynn",
    "Ivan",
    "Adele",
    "Whitfield",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Hamilton",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners",
    "Wilson",
    "Backus",
    "Johnson",
    "Wirth",
    "Clarke",
    "Stroustrup",
    "Easley",
    "Rossum",
    "Keller",
    "Lamport",
    "Goldwasser",
    "Milner",
    "Sammet",
    "Cerf",
    "Conway",
    "Sutherland",
    "Goldberg",
    "Diffie",
];
const STREETS: &[&str] = &[
    "Analytical Way",
    "Bletchley Road",
    "Compiler Lane",
    "Kernel Street",
    "Lambda Avenue",
    "Monad Close",
    "Pointer Drive",
    "Queue Terrace",
    "Register Row",
    "Stack Place",
    "Tensor Court",
    "Vector Hill",
];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Lakeside",
    "Fairview",
    "Greenville",
    "Kingston",
    "Oakridge",
    "Milton",
];

/// The anonymiser of one clone: its key and the source tenant's date offset.
pub struct Anonymiser {
    // The HMAC keyed once: every transform clones it instead of hashing the key again,
    // which halves the cost of a short value's MAC.
    keyed: Hmac<Sha256>,
    shift_days: i64,
}

impl std::fmt::Debug for Anonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anonymiser").finish_non_exhaustive()
    }
}

/// What kind of realistic value `fake` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FakeKind {
    /// "Grace Hopper".
    Name,
    /// "grace.hopper.3f9a1c@anon.invalid".
    Email,
    /// "+1-555-0142-8817".
    Phone,
    /// "42 Kernel Street, Springfield 04217".
    Address,
}

impl Anonymiser {
    /// The anonymiser under `key`, shifting dates by a constant derived from the key and
    /// the source tenant (between 1 and 365 days, either way).
    pub fn new(key: zeroize::Zeroizing<[u8; 32]>, source_tenant: &str) -> Self {
        // `new_from_slice` only fails for key lengths HMAC does not take; 32 is fine.
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).unwrap_or_else(|_| unreachable_hmac());
        let mut a = Self {
            keyed,
            shift_days: 0,
        };
        let m = a.mac("shift-date", source_tenant);
        let n = i64::from(u16::from_be_bytes([m[0], m[1]]) % 365) + 1;
        a.shift_days = if m[2] & 1 == 0 { n } else { -n };
        a
    }

    /// The date offset in days.
    pub fn shift_days(&self) -> i64 {
        self.shift_days
    }

    fn mac(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The scan's tag of an original value (keyed, so the tags stored beside a clone say
    /// nothing without the key): case and surrounding space do not matter.
    pub fn tag(&self, value: &str) -> u64 {
        let m = self.mac("original", &normalise(value));
        u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]])
    }

    /// `fake(kind, value)` and `tag(value)` from one MAC (the fake draws on the bytes the
    /// tag does not use), for the clone's hot path where a faked value is also tagged.
    pub fn fake_tagged(&self, kind: FakeKind, value: &str) -> (String, u64) {
        let norm = normalise(value);
        let m = self.mac("original", &norm);
        let tag = u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
        (self.fake_from(kind, &norm, m), tag)
    }

    /// The scan's tag of an original value in one record of the target (`record_key`,
    /// as written): for values whose anonymised form lives in the same space as the
    /// originals (a shifted date, a masked PIN), where only "still here, unchanged" is
    /// a leak and "equal to some other record's original" is chance.
    pub fn tag_in(&self, record_key: &str, value: &str) -> u64 {
        let mut m = self.keyed.clone();
        for part in ["original-in".as_bytes(), &[0], record_key.as_bytes(), &[0]] {
            m.update(part);
        }
        m.update(normalise(value).as_bytes());
        let m: [u8; 32] = m.finalize().into_bytes().into();
        u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]])
    }

    /// A keyed tag of `value` exactly as given (no normalising), in its own `domain`.
    pub fn exact_tag(&self, domain: &str, value: &str) -> u64 {
        let m = self.mac(domain, value);
        u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]])
    }

    /// A keyed digest: `h_` and 32 hex digits.
    pub fn hash(&self, value: &str) -> String {
        format!("h_{}", hex::encode(&self.mac("hash", value)[..16]))
    }

    /// Every letter and digit replaced by another of the same class (case kept),
    /// everything else kept, so length and format survive.
    pub fn mask(&self, value: &str) -> String {
        let mut stream = self.stream("mask", value);
        let out: String = value
            .chars()
            .map(|c| {
                let r = stream.next_byte();
                if c.is_ascii_digit() {
                    char::from(b'0' + r % 10)
                } else if c.is_ascii_lowercase() {
                    char::from(b'a' + r % 26)
                } else if c.is_ascii_uppercase() {
                    char::from(b'A' + r % 26)
                } else if c.is_alphanumeric() {
                    'x'
                } else {
                    c
                }
            })
            .collect();
        if out != value {
            return out;
        }
        // One chance in 10^n for n digits: move the first letter or digit one step on, so
        // a mask never hands back the value it hides.
        let mut moved = false;
        out.chars()
            .map(|c| {
                if moved || !c.is_ascii_alphanumeric() {
                    return c;
                }
                moved = true;
                match c {
                    '9' => '0',
                    'z' => 'a',
                    'Z' => 'A',
                    c => char::from(c as u8 + 1),
                }
            })
            .collect()
    }

    /// A realistic fake of `kind`, the same for the same original (e-mails compared
    /// without case).
    pub fn fake(&self, kind: FakeKind, value: &str) -> String {
        let norm = normalise(value);
        let m = self.mac("original", &norm);
        self.fake_from(kind, &norm, m)
    }

    /// The fake of `norm` (normalised) whose first round draws on `first` (its MAC).
    fn fake_from(&self, kind: FakeKind, norm: &str, first: [u8; 32]) -> String {
        let f = draw(kind, &first);
        if !f.eq_ignore_ascii_case(norm) {
            return f;
        }
        // A real "Grace Hopper" could draw herself; the next rounds draw someone else.
        let mut last = f;
        for round in 1..=3u8 {
            last = draw(kind, &self.mac(kind.domain(), &format!("{norm}\0{round}")));
            if !last.eq_ignore_ascii_case(norm) {
                break;
            }
        }
        last
    }

    /// True when `value` is something `fake` of `kind` makes (so meeting it in the
    /// target is no sign of an original, even when some original equals it).
    pub fn is_fake(kind: FakeKind, value: &str) -> bool {
        match kind {
            FakeKind::Email => is_fake_email(value),
            FakeKind::Phone => value.starts_with(FAKE_PHONE_PREFIX),
            FakeKind::Name => value
                .split_once(' ')
                .is_some_and(|(f, l)| FIRST.contains(&f) && LAST.contains(&l)),
            FakeKind::Address => {
                STREETS.iter().any(|st| value.contains(st))
                    && CITIES.iter().any(|c| value.contains(c))
            }
        }
    }

    /// The date or date-time moved by the tenant's offset, in its own format
    /// (`YYYY-MM-DD` or RFC 3339); `None` when it is neither.
    pub fn shift_date(&self, value: &str) -> Option<String> {
        use time::format_description::well_known::Rfc3339;
        let days = time::Duration::days(self.shift_days);
        if let Ok(t) = time::OffsetDateTime::parse(value, &Rfc3339) {
            return (t + days).format(&Rfc3339).ok();
        }
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(value, &fmt)
            .ok()
            .and_then(|d| d.checked_add(days))
            .and_then(|d| d.format(&fmt).ok())
    }

    /// `text` with every e-mail address and phone number replaced by its fake (the same
    /// fake as `fake` gives, so a mention in free text still joins).
    pub fn redact_text(&self, text: &str) -> String {
        let once = EMAIL.replace_all(text, |c: &regex::Captures<'_>| {
            if is_fake_email(&c[0]) {
                c[0].to_owned()
            } else {
                self.fake(FakeKind::Email, &c[0])
            }
        });
        PHONE
            .replace_all(&once, |c: &regex::Captures<'_>| {
                if is_fake_phone(&c[0]) {
                    c[0].to_owned()
                } else {
                    self.fake(FakeKind::Phone, &c[0])
                }
            })
            .into_owned()
    }

    /// Random-looking unit vector of `dim` values, the same for the same record key.
    pub fn unit_vector(&self, record_key: &str, dim: usize) -> Vec<f32> {
        let mut s = self.stream("vector", record_key);
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                let b = [s.next_byte(), s.next_byte(), s.next_byte(), s.next_byte()];
                (u32::from_be_bytes(b) as f64 / f64::from(u32::MAX) * 2.0 - 1.0) as f32
            })
            .collect();
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut()
                .for_each(|x| *x = (f64::from(*x) / norm) as f32);
        }
        v
    }

    fn stream(&self, domain: &str, value: &str) -> Stream<'_> {
        let seed = self.mac(domain, value);
        Stream {
            a: self,
            seed_hex: String::new(),
            block: seed,
            seed,
            counter: 1,
            at: 0,
        }
    }
}

fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this is never called.
    <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// True for an address `fake` made (its reserved domain).
pub fn is_fake_email(s: &str) -> bool {
    const AT_DOMAIN: &str = "@anon.invalid";
    let (s, d) = (s.as_bytes(), AT_DOMAIN.as_bytes());
    s.len() >= d.len() && s[s.len() - d.len()..].eq_ignore_ascii_case(d)
}

impl FakeKind {
    /// The MAC domain of a fake's later rounds.
    fn domain(self) -> &'static str {
        match self {
            Self::Name => "fake-name",
            Self::Email => "fake-email",
            Self::Phone => "fake-phone",
            Self::Address => "fake-address",
        }
    }
}

/// A fake of `kind` drawn from the MAC `m`, on the bytes after the first eight (those
/// are the value's scan tag when `m` is its `original` MAC).
fn draw(kind: FakeKind, m: &[u8; 32]) -> String {
    let pick = |i: usize, list: &[&'static str]| list[m[8 + i] as usize % list.len()];
    let r = &m[8..];
    match kind {
        FakeKind::Name => format!("{} {}", pick(0, FIRST), pick(1, LAST)),
        FakeKind::Email => {
            let mut e = String::with_capacity(48);
            e.extend(pick(0, FIRST).chars().map(|c| c.to_ascii_lowercase()));
            e.push('.');
            e.extend(pick(1, LAST).chars().map(|c| c.to_ascii_lowercase()));
            e.push('.');
            e.push_str(&hex::encode(&r[2..5]));
            e.push('@');
            e.push_str(FAKE_EMAIL_DOMAIN);
            e
        }
        FakeKind::Phone => {
            let d = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
            format!(
                "{FAKE_PHONE_PREFIX}{:02}-{:04}",
                d % 100,
                (d / 100) % 10_000
            )
        }
        FakeKind::Address => format!(
            "{} {}, {} {:05}",
            1 + u16::from_be_bytes([r[0], r[1]]) % 999,
            pick(2, STREETS),
            pick(3, CITIES),
            u32::from_be_bytes([0, r[4], r[5], r[6]]) % 100_000
        ),
    }
}

/// True for a number `fake` made, or one too short to be a phone number.
pub fn is_fake_phone(s: &str) -> bool {
    s.starts_with(FAKE_PHONE_PREFIX) || digits(s) < 9
}

fn digits(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

/// What two occurrences of one value have in common: no surrounding space, no case.
pub fn normalise(value: &str) -> std::borrow::Cow<'_, str> {
    let t = value.trim();
    if t.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(t.to_lowercase())
    }
}

/// A keyed byte stream for masks and vectors: the seed's MAC itself, then HMAC in
/// counter mode under the seed (a short mask costs one MAC).
struct Stream<'a> {
    a: &'a Anonymiser,
    seed: [u8; 32],
    seed_hex: String,
    block: [u8; 32],
    counter: u64,
    at: usize,
}

impl Stream<'_> {
    fn next_byte(&mut self) -> u8 {
        if self.at == 32 {
            if self.seed_hex.is_empty() {
                self.seed_hex = hex::encode(self.seed);
            }
            self.block = self.a.mac(&self.seed_hex, &self.counter.to_string());
            self.counter += 1;
            self.at = 0;
        }
        self.at += 1;
        self.block[self.at - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(k: u8) -> Anonymiser {
        Anonymiser::new(zeroize::Zeroizing::new([k; 32]), "tenant_001_acme_corp")
    }

    #[test]
    fn fakes_are_deterministic_per_key_and_join_across_case() {
        let a = anon(1);
        let e = a.fake(FakeKind::Email, "Jane.Doe@acme.example");
        assert_eq!(e, a.fake(FakeKind::Email, " jane.doe@ACME.example "));
        assert!(e.ends_with("@anon.invalid"), "{e}");
        assert_ne!(e, anon(2).fake(FakeKind::Email, "jane.doe@acme.example"));
        assert_ne!(e, a.fake(FakeKind::Email, "john@acme.example"));
        let p = a.fake(FakeKind::Phone, "+44 20 7946 0958");
        assert!(p.starts_with(FAKE_PHONE_PREFIX) && p.len() == 16, "{p}");
        assert!(a.fake(FakeKind::Name, "Jane Doe").contains(' '));
        assert!(a.fake(FakeKind::Address, "1 Main St").contains(", "));
    }

    #[test]
    fn mask_keeps_length_and_format() {
        let a = anon(1);
        let m = a.mask("AB-1234 cd@x.io");
        assert_eq!(m.len(), "AB-1234 cd@x.io".len());
        let shape = |s: &str| {
            s.chars()
                .map(|c| match c {
                    '0'..='9' => '9',
                    'a'..='z' => 'a',
                    'A'..='Z' => 'A',
                    o => o,
                })
                .collect::<String>()
        };
        assert_eq!(shape(&m), shape("AB-1234 cd@x.io"));
        assert_ne!(m, "AB-1234 cd@x.io");
        assert_eq!(m, a.mask("AB-1234 cd@x.io"));
        assert_eq!(a.hash("x"), a.hash("x"));
        assert_ne!(a.hash("x"), anon(2).hash("x"));
    }

    #[test]
    fn dates_shift_by_one_constant_in_their_own_format() {
        let a = anon(3);
        let d = a.shift_days();
        assert!(d != 0 && d.abs() <= 365);
        let s = a.shift_date("2025-01-18").expect("date");
        let back = Anonymiser::new(zeroize::Zeroizing::new([3; 32]), "tenant_001_acme_corp")
            .shift_date("2025-01-18");
        assert_eq!(Some(s.clone()), back);
        assert_eq!(s.len(), 10);
        let t = a.shift_date("2025-01-18T10:00:00Z").expect("datetime");
        assert!(t.starts_with(&s), "{t} vs {s}");
        assert_eq!(a.shift_date("not a date"), None);
    }

    #[test]
    fn redact_text_replaces_addresses_and_numbers_with_the_same_fakes() {
        let a = anon(4);
        let t = a.redact_text("mail Jane.Doe@acme.example or call +1 (415) 555-2671 today");
        assert!(!t.contains("acme.example") && !t.contains("2671"), "{t}");
        assert!(t.contains(&a.fake(FakeKind::Email, "jane.doe@acme.example")));
        assert_eq!(a.redact_text("order 12345 shipped"), "order 12345 shipped");
        assert_eq!(a.redact_text(&t), t, "fakes are left alone");
    }

    #[test]
    fn addresses_in_every_form_are_redacted() {
        let a = anon(4);
        for addr in [
            "josé.garcía@correo.es",
            "\"jane doe\"@example.org",
            "admin@intranet",
            "a@[127.0.0.1]",
            "o'brien+tag@example.net",
            "josé.ünïcode@exämple.org",
        ] {
            let t = a.redact_text(&format!("write to {addr} today"));
            let local = addr.split('@').next().unwrap_or_default().trim_matches('"');
            let head: String = local.chars().take(4).collect();
            assert!(!t.contains(addr), "{addr} -> {t}");
            assert!(
                head.chars().count() < 4 || !t.contains(&head),
                "{addr} -> {t}"
            );
            assert!(t.contains("@anon.invalid"), "{addr} -> {t}");
            assert!(EMAIL.is_match(addr), "{addr} is seen as an address");
        }
        assert_eq!(a.redact_text("order 12345 @ noon"), "order 12345 @ noon");
        assert_eq!(
            a.redact_text("needs lodash@4.17.21"),
            "needs lodash@4.17.21"
        );
    }

    #[test]
    fn unit_vectors_are_unit_and_keyed() {
        let a = anon(5);
        let v = a.unit_vector("vec-1", 16);
        let n: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!((n - 1.0).abs() < 1e-4);
        assert_eq!(v, a.unit_vector("vec-1", 16));
        assert_ne!(v, anon(6).unit_vector("vec-1", 16));
    }
}
