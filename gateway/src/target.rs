//! Parsing of `redis://[[user]:password@]host[:port][/db]` URLs.

use percent_encoding::percent_decode_str;

#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

// Hand-written so the password can never reach a log line through `{:?}`.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("redis url must start with redis:// (TLS and unix sockets are not supported)")]
    Scheme,
    #[error("redis url has an invalid port")]
    Port,
    #[error("redis url has an invalid database number")]
    Db,
    #[error("redis url has no host")]
    Host,
}

impl std::str::FromStr for Target {
    type Err = TargetError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let rest = url.strip_prefix("redis://").ok_or(TargetError::Scheme)?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => {
                    let user = (!user.is_empty()).then(|| decode(user));
                    (user, Some(decode(pass)))
                }
                None => (None, Some(decode(u))),
            },
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(TargetError::Host);
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let db = if path.is_empty() {
            0
        } else {
            path.parse().map_err(|_| TargetError::Db)?
        };
        Ok(Target {
            host,
            port,
            username,
            password,
            db,
        })
    }
}

fn split_host_port(s: &str) -> Result<(String, u16), TargetError> {
    // [::1]:6379 style IPv6 literal.
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(TargetError::Host)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| TargetError::Port)?,
            None if after.is_empty() => 6379,
            None => return Err(TargetError::Port),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().map_err(|_| TargetError::Port)?)),
        None => Ok((s.to_string(), 6379)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t: Target = "redis://127.0.0.1:7000".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db), ("127.0.0.1", 7000, 0));
        let t: Target = "redis://u:p%40ss@localhost/3".parse().unwrap();
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!((t.port, t.db), (6379, 3));
        let t: Target = "redis://:secret@[::1]:6380".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 6380));
        assert_eq!((t.username, t.password.as_deref()), (None, Some("secret")));
        assert_eq!("http://x".parse::<Target>(), Err(TargetError::Scheme));
        assert_eq!("redis://x:y".parse::<Target>(), Err(TargetError::Port));
        assert!(!format!("{:?}", "redis://:pw@h".parse::<Target>().unwrap()).contains("pw"));
    }
}
