//! chap-secrets, read as pppd reads it (`auth.c`, `scan_authfile` and `set_allowed_addrs`),
//! into a [`Secrets`] table.
//!
//! An entry is the words of one line ([`words`](super::words): quotes, escapes and comments
//! as pppd has them): client, server, secret, then the addresses the client may use, then
//! optionally `--` and extra pppd options.
//!
//! * `*` as client or server matches any name. A lookup takes, as pppd does, the entry
//!   whose client and server match most exactly (a named client beats a named server beats
//!   two wildcards), the first one in the file among equals.
//! * A secret `@/path` is read from that file (its first word).
//! * Addresses: `*` allows any pool address; host addresses make the user's fixed
//!   addresses ([`AddressRule::Fixed`]); `-` ends the list and, alone, allows none. pppd
//!   also lets an authenticated peer have no address when the column is empty, and so do
//!   we ([`AddressRule::Refused`], with a warning, since that is rarely what was meant).
//!   pppd's subnets (`10.0.0.0/24`), exclusions (`!10.0.0.1`) and host names are refused
//!   with an error: the pool cannot honour them.
//!
//! Where we are stricter than pppd: a line with fewer than three words, a secret that is
//! not UTF-8 (MS-CHAP hashes the password as UTF-16) and an unreadable `@/file` are errors
//! (pppd skips the entry and the user fails to log in without a reason in the log).

use core::net::Ipv4Addr;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use xpptp_proto::ppp::auth::{Password, StoredSecret};

use super::words::{self, Word};
use super::{ConfigError, Location, Problem, Warning, read};
use crate::pool::AddressRule;

/// pppd's chap-secrets.
pub const DEFAULT_CHAP_SECRETS: &str = "/etc/ppp/chap-secrets";

/// One line of chap-secrets. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEntry {
    /// The client name; `None` for `*`.
    pub client: Option<Vec<u8>>,
    /// The server name; `None` for `*`.
    pub server: Option<Vec<u8>>,
    /// The secret.
    pub secret: StoredSecret,
    /// The addresses the client may use.
    pub addresses: AddressRule,
    /// The line it came from.
    pub line: usize,
}

impl SecretEntry {
    fn rank(&self) -> u8 {
        (u8::from(self.client.is_some()) << 1) | u8::from(self.server.is_some())
    }

    fn matches_server(&self, server: &[u8]) -> bool {
        self.server.as_deref().is_none_or(|s| s == server)
    }
}

/// The secrets table. A reload builds a new one (the daemon swaps it on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    entries: Vec<SecretEntry>,
    /// Entries by client name, in file order.
    by_client: HashMap<Vec<u8>, Vec<usize>>,
    /// Entries with `*` as client, in file order.
    wildcard_clients: Vec<usize>,
}

impl Secrets {
    /// A table of `entries` (file order matters for ties).
    pub fn new(entries: Vec<SecretEntry>) -> Secrets {
        let mut by_client: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        let mut wildcard_clients = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match &entry.client {
                Some(client) => by_client.entry(client.clone()).or_default().push(i),
                None => wildcard_clients.push(i),
            }
        }
        Secrets {
            entries,
            by_client,
            wildcard_clients,
        }
    }

    /// The entry pppd would use to authenticate `client` on `server` (our name).
    pub fn lookup(&self, client: &[u8], server: &[u8]) -> Option<&SecretEntry> {
        let named = self.by_client.get(client).map(Vec::as_slice).unwrap_or(&[]);
        let mut best: Option<&SecretEntry> = None;
        for &i in named.iter().chain(&self.wildcard_clients) {
            let Some(entry) = self.entries.get(i) else {
                continue;
            };
            if !entry.matches_server(server) {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    entry.rank() > b.rank() || (entry.rank() == b.rank() && entry.line < b.line)
                }
            };
            if better {
                best = Some(entry);
            }
        }
        best
    }

    /// Every address some entry lists as fixed: the pool keeps them for their owners.
    pub fn fixed_addresses(&self) -> HashSet<Ipv4Addr> {
        self.entries
            .iter()
            .filter_map(|e| match &e.addresses {
                AddressRule::Fixed(list) => Some(list.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[SecretEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The start of a `@/file` secret file.
#[cfg(not(fuzzing))]
fn read_secret_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // A word is shorter than this: reading more is pointless (and `@/dev/zero` must not
    // fill the memory).
    const SECRET_FILE_READ_LIMIT: u64 = 4096;
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(SECRET_FILE_READ_LIMIT)
        .read_to_end(&mut data)?;
    Ok(data)
}

/// Fuzzing reads no file: a path from the input could name a FIFO and block.
#[cfg(fuzzing)]
fn read_secret_file(_path: &Path) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::other(
        "secret files are not read while fuzzing",
    ))
}

/// An entry's client and server columns (`None`: `*`).
type ClientServer = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads and parses chap-secrets at `path`.
pub fn load_secrets(path: &Path, warnings: &mut Vec<Warning>) -> Result<Secrets, ConfigError> {
    let data = read(path)?;
    parse_chap_secrets(path, &data, warnings)
}

/// Parses chap-secrets `data` (named `path` in messages).
pub fn parse_chap_secrets(
    path: &Path,
    data: &[u8],
    warnings: &mut Vec<Warning>,
) -> Result<Secrets, ConfigError> {
    let words = words::split(data).map_err(|e| {
        Problem::new(
            format!("a word of {} bytes or more", words::MAX_WORD_LEN),
            "shorten it (pppd would truncate it)",
        )
        .at(Location::line(path, e.line))
    })?;
    let mut entries: Vec<SecretEntry> = Vec::new();
    let mut seen: HashMap<ClientServer, usize> = HashMap::new();
    let mut fixed_owner: HashMap<Ipv4Addr, (Vec<u8>, usize)> = HashMap::new();
    let mut rest = words.as_slice();
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .skip(1)
            .position(|w| w.starts_line)
            .map_or(rest.len(), |p| p + 1);
        let (line_words, tail) = rest.split_at(len);
        rest = tail;
        let at = Location::line(path, first.line);
        let entry = parse_entry(line_words, &at, warnings)?;
        if let Some(&earlier) = seen.get(&(entry.client.clone(), entry.server.clone())) {
            warnings.push(Warning {
                at: at.clone(),
                message: format!(
                    "shadowed by line {earlier} (same client and server): pppd and xpptp use the \
                     first; remove one"
                ),
            });
        } else {
            seen.insert((entry.client.clone(), entry.server.clone()), entry.line);
        }
        if let AddressRule::Fixed(list) = &entry.addresses {
            let client = entry.client.clone().unwrap_or_else(|| b"*".to_vec());
            for &address in list {
                match fixed_owner.get(&address) {
                    Some((other, line)) if *other != client => warnings.push(Warning {
                        at: at.clone(),
                        message: format!(
                            "{address} is also the fixed address of {} (line {line}): only one \
                             of them can be connected at a time",
                            String::from_utf8_lossy(other)
                        ),
                    }),
                    Some(_) => {}
                    None => {
                        fixed_owner.insert(address, (client.clone(), entry.line));
                    }
                }
            }
        }
        entries.push(entry);
    }
    Ok(Secrets::new(entries))
}

fn name(word: &Word) -> Option<Vec<u8>> {
    (word.text != b"*").then(|| word.text.clone())
}

fn parse_entry(
    line: &[Word],
    at: &Location,
    warnings: &mut Vec<Warning>,
) -> Result<SecretEntry, ConfigError> {
    let [client, server, secret, addresses @ ..] = line else {
        return Err(Problem::new(
            format!(
                "an entry of {} word(s); chap-secrets needs client, server and secret",
                line.len()
            ),
            "complete the line (`user pptpd \"password\" *`) or comment it out with #",
        )
        .at(at.clone()));
    };
    let secret_text = if let Some(file) = secret
        .text
        .strip_prefix(b"@")
        .filter(|f| f.starts_with(b"/"))
    {
        let file = PathBuf::from(String::from_utf8_lossy(file).into_owned());
        let data = read_secret_file(&file).map_err(|e| {
            Problem::new(
                format!("the secret file {} cannot be read ({e})", file.display()),
                "create it with the secret as its first word, or write the secret here",
            )
            .at(at.clone())
        })?;
        let first = words::split(&data)
            .ok()
            .and_then(|w| w.into_iter().next())
            .ok_or_else(|| {
                Problem::new(
                    format!("the secret file {} holds no secret", file.display()),
                    "write the secret as its first word",
                )
                .at(at.clone())
            })?;
        first.text
    } else {
        secret.text.clone()
    };
    let secret_text = String::from_utf8(secret_text).map_err(|_| {
        Problem::new(
            "the secret is not valid UTF-8",
            "write it in UTF-8: MS-CHAP hashes the password as UTF-16",
        )
        .at(at.clone())
    })?;
    let client_name = name(client);
    Ok(SecretEntry {
        client: client_name.clone(),
        server: name(server),
        secret: StoredSecret::Password(Password::new(secret_text)),
        addresses: parse_addresses(addresses, at, &client.lossy(), warnings)?,
        line: client.line,
    })
}

fn parse_addresses(
    words: &[Word],
    at: &Location,
    client: &str,
    warnings: &mut Vec<Warning>,
) -> Result<AddressRule, ConfigError> {
    let options_start = words.iter().position(|w| w.text == b"--");
    let (addresses, options) = words.split_at(options_start.unwrap_or(words.len()));
    if options.len() > 1 {
        let names: Vec<String> = options.iter().skip(1).map(Word::lossy).collect();
        warnings.push(Warning {
            at: at.clone(),
            message: format!("extra pppd options after `--` ignored: {}", names.join(" ")),
        });
    }
    if addresses.is_empty() {
        warnings.push(Warning {
            at: at.clone(),
            message: format!(
                "{client} has no address column: pppd gives an authenticated peer no address \
                 then, and neither does xpptp; write `*` for a pool address"
            ),
        });
        return Ok(AddressRule::Refused);
    }
    let mut fixed = Vec::new();
    for word in addresses {
        let text = word.lossy();
        match text.as_str() {
            "-" => break,
            "*" => return Ok(AddressRule::Pool),
            _ if text.starts_with('!') || text.contains('/') => {
                return Err(Problem::new(
                    format!("the address rule `{text}` (a subnet or an exclusion)"),
                    "list the user's fixed addresses one by one, or write `*` for a pool address",
                )
                .at(at.clone()));
            }
            _ => {
                let address = super::addr::host(&text).map_err(|p| p.at(at.clone()))?;
                if !fixed.contains(&address) {
                    fixed.push(address);
                }
            }
        }
    }
    Ok(if fixed.is_empty() {
        AddressRule::Refused
    } else {
        AddressRule::Fixed(fixed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Secrets, Vec<Warning>) {
        let mut warnings = Vec::new();
        let secrets =
            parse_chap_secrets(Path::new("chap-secrets"), text.as_bytes(), &mut warnings).unwrap();
        (secrets, warnings)
    }

    fn error(text: &str) -> String {
        parse_chap_secrets(Path::new("chap-secrets"), text.as_bytes(), &mut Vec::new())
            .unwrap_err()
            .to_string()
    }

    fn password(entry: &SecretEntry) -> &str {
        match &entry.secret {
            StoredSecret::Password(p) => p.as_str(),
            StoredSecret::NtHash(_) => unreachable!(),
        }
    }

    #[test]
    fn columns_quotes_and_comments() {
        let (s, w) = parse(
            "# client server secret addresses\n\
             alice pptpd \"two words\" *   # trailing comment\n\
             bob * 'p#ss' 10.0.0.5 10.0.0.6\n\
             carol pptpd s\\x41cret -\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.len(), 3);
        let alice = s.lookup(b"alice", b"pptpd").unwrap();
        assert_eq!(password(alice), "two words");
        assert_eq!(alice.addresses, AddressRule::Pool);
        assert_eq!(alice.line, 2);
        let bob = s.lookup(b"bob", b"anything").unwrap();
        assert_eq!(password(bob), "p#ss");
        assert_eq!(
            bob.addresses,
            AddressRule::Fixed(vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)])
        );
        let carol = s.lookup(b"carol", b"pptpd").unwrap();
        assert_eq!(password(carol), "sAcret");
        assert_eq!(carol.addresses, AddressRule::Refused);
        assert!(s.lookup(b"carol", b"other").is_none());
        assert!(s.lookup(b"dave", b"pptpd").is_none());
        assert_eq!(
            s.fixed_addresses(),
            HashSet::from([Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)])
        );
    }

    #[test]
    fn the_most_exact_match_wins_then_the_first() {
        let (s, w) = parse(
            "* * any *\n\
             * pptpd anyuser *\n\
             alice * alice-any *\n\
             alice pptpd alice-exact *\n\
             alice pptpd alice-shadowed *\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].to_string()
                .starts_with("chap-secrets:5: shadowed by line 4")
        );
        assert_eq!(
            password(s.lookup(b"alice", b"pptpd").unwrap()),
            "alice-exact"
        );
        assert_eq!(password(s.lookup(b"alice", b"other").unwrap()), "alice-any");
        assert_eq!(password(s.lookup(b"bob", b"pptpd").unwrap()), "anyuser");
        assert_eq!(password(s.lookup(b"bob", b"other").unwrap()), "any");
    }

    #[test]
    fn address_column_rules() {
        let (s, w) = parse(
            "a s x\nb s x 10.0.0.1 - 10.0.0.2\nc s x 10.0.0.3 *\nd s x 10.0.0.4 -- mtu 1400\n",
        );
        assert_eq!(s.entries()[0].addresses, AddressRule::Refused);
        assert_eq!(
            s.entries()[1].addresses,
            AddressRule::Fixed(vec![Ipv4Addr::new(10, 0, 0, 1)])
        );
        assert_eq!(s.entries()[2].addresses, AddressRule::Pool);
        assert_eq!(
            s.entries()[3].addresses,
            AddressRule::Fixed(vec![Ipv4Addr::new(10, 0, 0, 4)])
        );
        let messages: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert!(
            messages[0].starts_with("chap-secrets:1: a has no address column"),
            "{messages:?}"
        );
        assert!(
            messages[1]
                .starts_with("chap-secrets:4: extra pppd options after `--` ignored: mtu 1400")
        );
    }

    #[test]
    fn shared_fixed_addresses_are_warned() {
        let (_, w) = parse("a s x 10.0.0.1\nb s y 10.0.0.1\n");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].message
                .contains("also the fixed address of a (line 1)")
        );
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("xpptp-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("alice");
        std::fs::write(&file, "\"from file\" ignored\n").unwrap();
        let (s, _) = parse(&format!("alice pptpd @{} *\n", file.display()));
        assert_eq!(password(&s.entries()[0]), "from file");
        let missing = error(&format!("alice pptpd @{}/none *\n", dir.display()));
        assert!(
            missing.starts_with("chap-secrets:1: the secret file"),
            "{missing}"
        );
        assert!(missing.contains("cannot be read"));
        std::fs::write(&file, "# nothing\n").unwrap();
        let empty = error(&format!("alice pptpd @{} *\n", file.display()));
        assert!(empty.contains("holds no secret"), "{empty}");
        // Only the start of the file is read: an endless one is no secret either.
        let endless = error("alice pptpd @/dev/zero *\n");
        assert!(endless.contains("holds no secret"), "{endless}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_error_names_line_and_fix() {
        for (text, line, needle) in [
            (
                "ok s x *\nalice pptpd\n",
                2,
                "needs client, server and secret",
            ),
            ("alice\n", 1, "needs client, server and secret"),
            ("a s x 10.0.0.0/24\n", 1, "subnet or an exclusion"),
            ("a s x !10.0.0.1\n", 1, "subnet or an exclusion"),
            ("a s x host.example\n", 1, "not an IPv4 address"),
            ("a s x 127.0.0.1\n", 1, "cannot be a tunnel address"),
            ("a s \\377 *\n", 1, "not valid UTF-8"),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("chap-secrets:{line}: ")),
                "{message}"
            );
            assert!(message.contains(needle), "{message}");
            assert!(message.contains("; "), "no fix in {message}");
        }
        let long = format!("a s {} *\n", "x".repeat(words::MAX_WORD_LEN));
        assert!(error(&long).starts_with("chap-secrets:1: a word of 1024 bytes"));
    }

    #[test]
    fn debug_output_has_no_secret() {
        let (s, _) = parse("alice pptpd TopSecret-42 *\n");
        let debug = format!("{s:?}");
        assert!(!debug.contains("TopSecret-42"), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
