//! A repository under an S3 prefix: AWS S3 or any S3-compatible store (MinIO,
//! Ceph RGW, Garage, Wasabi, Backblaze B2). Object keys are the local layout's
//! paths below the prefix (format-spec/01), so a repository copied between a
//! disk and a bucket with any sync tool stays valid.
//!
//! Requests go through the `object_store` crate (SigV4 signing, list
//! pagination, credentials from instance roles). The rest of cellar is
//! synchronous, so this backend owns a small tokio runtime and blocks on it;
//! callers get parallelism from their own threads (the packer runs
//! [`Properties::connections`] uploaders). The client's own retries are off:
//! [`super::retry::RetryBackend`] retries, counts, and knows which errors are
//! permanent.
//!
//! Settings come from the places AWS tools read them: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, and `AWS_PROFILE` with `~/.aws/credentials` and
//! `~/.aws/config`. Environment variables win over the profile.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig,
};

use super::retry::transient;
use super::{FileType, Options, Properties, ReadBackend, WriteBackend};
use crate::error::{Error, Result};

/// Pack uploads in flight when `--connections` is not given: enough to hide
/// a PUT's latency behind the others on a fast link, few enough that the
/// packs waiting for them (16 MiB each) stay a small part of memory.
pub const DEFAULT_CONNECTIONS: usize = 8;

pub struct S3Backend {
    rt: tokio::runtime::Runtime,
    store: AmazonS3,
    bucket: String,
    /// Empty, or ends with '/'.
    prefix: String,
    /// Where object URLs in messages start, e.g. `http://127.0.0.1:9000/bucket`.
    base_url: String,
    storage_class: Option<String>,
    connections: usize,
    /// Cleared when the server answers a conditional PUT with 501.
    conditional_put: AtomicBool,
}

/// The settings one AWS profile holds (credentials file and config file merged).
#[derive(Default, Debug)]
struct Profile {
    values: HashMap<String, String>,
}

impl Profile {
    fn get(&self, k: &str) -> Option<String> {
        self.values.get(k).cloned().filter(|v| !v.is_empty())
    }
}

/// The key/value lines of one `[section]` of an INI file (repeated sections merge).
fn ini_section(text: &str, section: &str) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    let mut seen = false;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            seen |= inside;
        } else if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    seen.then_some(map)
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn aws_file(var: &str, name: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws").join(name)))
}

/// Reads `AWS_PROFILE` (or "default") from the shared credentials and config files.
fn load_profile() -> Result<Profile> {
    let explicit = env("AWS_PROFILE");
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let mut p = Profile::default();
    let mut seen = false;
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    // The credentials file wins over the config file for the same key.
    for (var, file, section) in [
        ("AWS_CONFIG_FILE", "config", config_section.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", "credentials", name.as_str()),
    ] {
        let Some(path) = aws_file(var, file) else {
            continue;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        if let Some(values) = ini_section(&text, section) {
            seen = true;
            p.values.extend(values);
        }
    }
    if explicit.is_some() && !seen {
        return Err(Error::InvalidArgument(format!(
            "AWS_PROFILE={name}: no such profile in ~/.aws/credentials or ~/.aws/config"
        )));
    }
    Ok(p)
}

/// Where the S3 service is and who we are to it.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// Access key id and secret; None to let object_store find them.
    pub credentials: Option<(String, String)>,
    pub session_token: Option<String>,
    pub region: String,
    /// e.g. `http://127.0.0.1:9000`; None for AWS.
    pub endpoint: Option<String>,
    /// Let object_store read the rest of the AWS_* variables too.
    pub from_env: bool,
}

impl S3Settings {
    /// The AWS conventions: environment variables first, then the profile.
    pub fn from_env() -> Result<S3Settings> {
        let env_keys = env("AWS_ACCESS_KEY_ID").zip(env("AWS_SECRET_ACCESS_KEY"));
        // An explicit AWS_PROFILE means the profile; otherwise keys in the
        // environment win and the default profile only fills gaps.
        let profile = if env_keys.is_some() && env("AWS_PROFILE").is_none() {
            Profile::default()
        } else {
            load_profile()?
        };
        let profile_keys = profile
            .get("aws_access_key_id")
            .zip(profile.get("aws_secret_access_key"));
        let (credentials, session_token) = if env("AWS_PROFILE").is_some() && profile_keys.is_some()
        {
            (profile_keys, profile.get("aws_session_token"))
        } else if env_keys.is_some() {
            (env_keys, env("AWS_SESSION_TOKEN"))
        } else {
            (profile_keys, profile.get("aws_session_token"))
        };
        Ok(S3Settings {
            credentials,
            session_token,
            region: env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or_else(|| profile.get("region"))
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint: env("AWS_ENDPOINT_URL_S3")
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .or_else(|| profile.get("endpoint_url"))
                .map(|e| e.trim_end_matches('/').to_string()),
            from_env: true,
        })
    }
}

/// Storage classes whose objects cannot be read without a restore request
/// first: restores and checks would fail on them.
const ARCHIVE_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

impl S3Backend {
    /// `url` is `s3://BUCKET[/PREFIX]`; settings from the environment and AWS profile.
    pub fn new(url: &str, opts: &Options) -> Result<S3Backend> {
        S3Backend::with_settings(url, opts, &S3Settings::from_env()?)
    }

    pub fn with_settings(url: &str, opts: &Options, settings: &S3Settings) -> Result<S3Backend> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{url}: expected s3://BUCKET/PREFIX"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !prefix.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "{url}: the prefix must not contain empty, '.' or '..' parts"
            )));
        }
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        if let Some(class) = &opts.s3_storage_class {
            if ARCHIVE_CLASSES.contains(&class.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "--s3-storage-class {class}: objects in it must be restored before every read; use GLACIER_IR, STANDARD_IA or INTELLIGENT_TIERING"
                )));
            }
        }

        let endpoint = settings.endpoint.clone();
        // Custom endpoints (MinIO, Garage, Ceph) rarely have a wildcard DNS
        // name per bucket; AWS prefers virtual-hosted names.
        let path_style = opts.s3_path_style || endpoint.is_some();
        let region = settings.region.clone();

        let client = ClientOptions::new()
            .with_timeout(Duration::from_secs(300))
            .with_connect_timeout(Duration::from_secs(10));
        // From the environment, object_store also picks up web identity,
        // container and instance-role credentials when no key is given.
        let mut b = if settings.from_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        }
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_virtual_hosted_style_request(!path_style)
        .with_client_options(client)
        .with_retry(RetryConfig {
            max_retries: 0,
            ..Default::default()
        });
        if let Some((id, secret)) = &settings.credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(t) = &settings.session_token {
                b = b.with_token(t);
            }
        }
        let base_url = match &endpoint {
            Some(e) => {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                if path_style {
                    format!("{e}/{bucket}")
                } else {
                    match e.split_once("://") {
                        Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
                        None => format!("{e}/{bucket}"),
                    }
                }
            }
            None if path_style => format!("https://s3.{region}.amazonaws.com/{bucket}"),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let store = b
            .build()
            .map_err(|e| Error::InvalidArgument(format!("{url}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cellar-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("{url}: starting the S3 client: {e}")))?;
        Ok(S3Backend {
            rt,
            store,
            bucket: bucket.to_string(),
            prefix,
            base_url,
            storage_class: opts.s3_storage_class.clone(),
            connections: opts.connections.unwrap_or(DEFAULT_CONNECTIONS).max(1),
            conditional_put: AtomicBool::new(true),
        })
    }

    fn key(&self, t: FileType, name: &str) -> String {
        match t {
            FileType::Config => format!("{}config", self.prefix),
            FileType::Pack => {
                let sub = name.get(..2).unwrap_or("00");
                format!("{}data/{sub}/{name}", self.prefix)
            }
            _ => format!("{}{}/{name}", self.prefix, t.dir()),
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.base_url)
    }

    /// One line naming the request, the object URL and what S3 said.
    fn err(&self, method: &str, key: &str, e: object_store::Error) -> io::Error {
        let what = format!("{method} {}", self.url(key));
        let (status, code) = s3_status(&e);
        // A missing bucket is not a missing file: "no repository" would mislead.
        if matches!(e, object_store::Error::NotFound { .. })
            && code.as_deref().is_none_or(|c| c == "NoSuchKey")
        {
            return io::Error::new(io::ErrorKind::NotFound, format!("{what}: 404 NoSuchKey"));
        }
        if let Some(status) = status {
            let mut msg = format!("{what}: {status}");
            if let Some(c) = code {
                msg.push(' ');
                msg.push_str(&c);
            }
            if let Some(m) = s3_message(&e) {
                msg.push_str(": ");
                msg.push_str(&m);
            }
            return match status {
                500..=599 | 429 | 408 => transient(io::ErrorKind::Other, msg),
                401 | 403 => io::Error::new(io::ErrorKind::PermissionDenied, msg),
                _ => io::Error::other(msg),
            };
        }
        let detail = one_line(&e);
        if let Some(kind) = http_kind(&e) {
            use object_store::client::HttpErrorKind as K;
            let k = match kind {
                K::Connect => io::ErrorKind::ConnectionRefused,
                K::Timeout => io::ErrorKind::TimedOut,
                _ => io::ErrorKind::ConnectionReset,
            };
            return transient(k, format!("{what}: {detail}"));
        }
        io::Error::other(format!("{what}: {detail}"))
    }

    fn path(&self, key: &str) -> ObjPath {
        ObjPath::from(key)
    }

    fn put(&self, t: FileType, name: &str, data: &[u8], mode: PutMode) -> io::Result<bool> {
        let key = self.key(t, name);
        let mut attributes = Attributes::new();
        // Only packs take the storage class: the small files every command
        // reads (config, keys, index, snapshots, locks) stay in STANDARD.
        if let (FileType::Pack, Some(c)) = (t, &self.storage_class) {
            attributes.insert(Attribute::StorageClass, c.clone().into());
        }
        let opts = PutOptions {
            mode,
            attributes,
            ..Default::default()
        };
        let payload = PutPayload::from(data.to_vec());
        let r = self
            .rt
            .block_on(self.store.put_opts(&self.path(&key), payload, opts));
        match r {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err("PUT", &key, e)),
        }
    }

    /// `create_new` for servers without conditional PUT: look, write, read
    /// back. Two writers that both find the name free both write; each then
    /// reads back and only the one whose bytes are there returns true. A
    /// reader between the second PUT and the first writer's read-back can
    /// still make both believe they won; repository names are content
    /// hashes except `config`, so only two `init`s racing on one prefix can
    /// meet this (format-spec/05, §5.1).
    fn create_new_fallback(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<bool> {
        match self.size(t, name) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.put(t, name, data, PutMode::Overwrite)?;
        Ok(self.read(t, name)? == data)
    }

    fn list_keys(&self, dir: &str) -> io::Result<Vec<(String, u64)>> {
        let key = format!("{}{dir}", self.prefix);
        let stream = self.store.list(Some(&self.path(&key)));
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(stream.try_collect())
            .map_err(|e| self.err("LIST", &format!("{key}/"), e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                Some((name, m.size))
            })
            .collect())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// The HTTP status and S3 error body of a failed request, if it got an answer.
/// object_store keeps its response error type private, so this reads its
/// message: "Server returned non-2xx status code: 403 Forbidden: <body>".
fn response(e: &object_store::Error) -> Option<(u16, String)> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        let m = s.to_string();
        if let Some(i) = m.find("status code: ") {
            let rest = &m[i + "status code: ".len()..];
            if let Some(code) = rest.get(..3).and_then(|c| c.parse().ok()) {
                let body = rest.split_once(": ").map(|(_, b)| b).unwrap_or("");
                return Some((code, body.to_string()));
            }
        }
        src = s.source();
    }
    None
}

fn s3_status(e: &object_store::Error) -> (Option<u16>, Option<String>) {
    match response(e) {
        Some((status, body)) => (Some(status), xml_tag(&body, "Code")),
        None => (None, None),
    }
}

fn s3_message(e: &object_store::Error) -> Option<String> {
    response(e).and_then(|(_, body)| xml_tag(&body, "Message"))
}

fn http_kind(e: &object_store::Error) -> Option<object_store::client::HttpErrorKind> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            return Some(h.kind());
        }
        src = s.source();
    }
    None
}

/// The innermost causes of an error, joined on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut src: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !m.is_empty() && !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        src = s.source();
    }
    // The outer layers repeat the URL and timing; the last causes say what happened.
    let tail: Vec<String> = parts.into_iter().rev().take(2).collect();
    let s = if tail.is_empty() {
        e.to_string()
    } else {
        tail.into_iter().rev().collect::<Vec<_>>().join(": ")
    };
    s.replace('\n', " ")
}

/// The text of the first `<tag>…</tag>` in an S3 XML error body.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    let v = body[start..end].trim();
    (!v.is_empty()).then(|| v.chars().take(200).collect())
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }

    fn properties(&self) -> Properties {
        Properties {
            conditional_create: self.conditional_put.load(Ordering::Relaxed),
            cheap_ranged_reads: false,
            connections: self.connections,
        }
    }

    fn read(&self, t: FileType, name: &str) -> io::Result<Vec<u8>> {
        let key = self.key(t, name);
        let path = self.path(&key);
        self.rt
            .block_on(async {
                let r = self.store.get(&path).await?;
                r.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| self.err("GET", &key, e))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let key = self.key(t, name);
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
        if len == 0 {
            self.size(t, name)?;
            return Ok(Vec::new());
        }
        let r = self
            .rt
            .block_on(self.store.get_range(&self.path(&key), offset..end));
        match r {
            Ok(b) if b.len() as u64 == len => Ok(b.to_vec()),
            Ok(b) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "GET {} bytes {offset}-{}: got {} bytes",
                    self.url(&key),
                    end - 1,
                    b.len()
                ),
            )),
            Err(e) => {
                let (status, _) = s3_status(&e);
                let range_err = status == Some(416)
                    || matches!(&e, object_store::Error::Generic { source, .. }
                        if source.to_string().contains("range"));
                if range_err {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "GET {} bytes {offset}-{}: beyond the end of the object",
                            self.url(&key),
                            end - 1
                        ),
                    ))
                } else {
                    Err(self.err("GET", &key, e))
                }
            }
        }
    }

    fn list(&self, t: FileType) -> io::Result<Vec<(String, u64)>> {
        match t {
            FileType::Config => match self.size(t, "config") {
                Ok(n) => Ok(vec![("config".into(), n)]),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            _ => self.list_keys(t.dir()),
        }
    }

    fn size(&self, t: FileType, name: &str) -> io::Result<u64> {
        let key = self.key(t, name);
        self.rt
            .block_on(self.store.head(&self.path(&key)))
            .map(|m| m.size)
            .map_err(|e| self.err("HEAD", &key, e))
    }

    fn is_empty(&self) -> io::Result<bool> {
        let key = self.prefix.trim_end_matches('/');
        let p = (!key.is_empty()).then(|| self.path(key));
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(p.as_ref()))
            .map_err(|e| self.err("LIST", &self.prefix, e))?;
        Ok(r.objects.is_empty() && r.common_prefixes.is_empty())
    }
}

impl WriteBackend for S3Backend {
    /// Nothing to create: S3 has no folders, and `init` must not touch
    /// anything outside the prefix (not even the bucket).
    fn create(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<()> {
        self.put(t, name, data, PutMode::Overwrite).map(|_| ())
    }

    fn create_new(&self, t: FileType, name: &str, data: &[u8]) -> io::Result<bool> {
        if !self.conditional_put.load(Ordering::Relaxed) {
            return self.create_new_fallback(t, name, data);
        }
        match self.put(t, name, data, PutMode::Create) {
            Err(e)
                if e.to_string().contains(": 501") || e.to_string().contains("NotImplemented") =>
            {
                self.conditional_put.store(false, Ordering::Relaxed);
                self.create_new_fallback(t, name, data)
            }
            r => r,
        }
    }

    fn remove(&self, t: FileType, name: &str) -> io::Result<()> {
        let key = self.key(t, name);
        match self.rt.block_on(self.store.delete(&self.path(&key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("DELETE", &key, e)),
        }
    }

    /// A PUT that returned 200 is durable.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections() {
        let text = "[default]\naws_access_key_id = A\n# c\n[profile x]\nregion=eu-west-1\n[x]\naws_access_key_id=B\n";
        assert_eq!(
            ini_section(text, "default").unwrap()["aws_access_key_id"],
            "A"
        );
        assert_eq!(
            ini_section(text, "profile x").unwrap()["region"],
            "eu-west-1"
        );
        assert_eq!(ini_section(text, "x").unwrap()["aws_access_key_id"], "B");
        assert!(ini_section(text, "y").is_none());
    }

    #[test]
    fn xml_error_code() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";
        assert_eq!(xml_tag(body, "Code").as_deref(), Some("SlowDown"));
        assert_eq!(
            xml_tag(body, "Message").as_deref(),
            Some("Reduce your request rate.")
        );
        assert_eq!(xml_tag("", "Code"), None);
    }
}
