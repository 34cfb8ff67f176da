//! Deletion marks (`marks/<storage id>`): the packs a prune has condemned but
//! not yet deleted. A backup never deduplicates against a blob whose only
//! indexed copy is in a marked pack, and only a later prune deletes a marked
//! pack (format-spec/05, §5.7). Here: the object, reading all marks, and
//! copying them into the local cache.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::repository::Repository;

pub const AAD: &[u8] = b"cellar:mark";
/// Decompressed body limit: 65,536 packs of ~120 JSON bytes fit many times over.
pub const MAX_BODY: usize = 64 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkedPack {
    /// Pack id, 64 lowercase hex.
    pub id: String,
    /// When the pack was first marked (RFC 3339); the grace period counts from here.
    pub marked: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkFile {
    pub version: u32,
    pub time: String,
    pub hostname: String,
    pub packs: Vec<MarkedPack>,
}

/// The union of all mark files: pack -> when it was marked (the latest time
/// any file gives, so the grace period is never shortened).
#[derive(Debug, Default)]
pub struct Marks {
    pub files: Vec<String>,
    pub packs: BTreeMap<PackId, jiff::Timestamp>,
    /// Mark files that could not be read or opened, with the reason.
    pub unreadable: Vec<(String, String)>,
}

pub fn read_one(repo: &Repository, name: &str) -> Result<MarkFile> {
    let bytes = repo
        .backend()
        .read(FileType::Mark, name)
        .map_err(repo.berr())?;
    if hex::encode(crate::id::storage_hash(&bytes)) != name {
        return Err(Error::corrupt(
            "mark",
            name,
            "content does not match its name",
        ));
    }
    let framed = repo
        .keys()
        .open(AAD, &bytes)
        .map_err(|e| Error::corrupt("mark", name, e.to_string()))?;
    let body = crate::compress::unframe_meta("mark", &framed, MAX_BODY)?;
    let m: MarkFile =
        serde_json::from_slice(&body).map_err(|e| Error::corrupt("mark", name, e.to_string()))?;
    if m.version != crate::repofile::FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "mark",
            version: m.version as u64,
        });
    }
    Ok(m)
}

fn names(repo: &Repository) -> Result<Vec<String>> {
    let mut out: Vec<String> = repo
        .backend()
        .list(FileType::Mark)
        .map_err(repo.berr())?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.len() == 64 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .collect();
    out.sort();
    Ok(out)
}

pub fn read_all(repo: &Repository) -> Result<Marks> {
    let mut marks = Marks::default();
    for name in names(repo)? {
        match read_one(repo, &name) {
            Ok(m) => {
                for p in m.packs {
                    let (Ok(id), Ok(t)) =
                        (PackId::from_hex(&p.id), p.marked.parse::<jiff::Timestamp>())
                    else {
                        marks
                            .unreadable
                            .push((name.clone(), format!("bad entry for pack {:?}", p.id)));
                        continue;
                    };
                    let e = marks.packs.entry(id).or_insert(t);
                    *e = (*e).max(t);
                }
            }
            Err(e) => marks.unreadable.push((name.clone(), e.to_string())),
        }
        marks.files.push(name);
    }
    Ok(marks)
}

/// Writes one mark file listing `packs`; returns its name.
pub fn write(repo: &Repository, packs: &BTreeMap<PackId, jiff::Timestamp>) -> Result<String> {
    let m = MarkFile {
        version: crate::repofile::FORMAT_VERSION,
        time: crate::repofile::now_rfc3339(),
        hostname: crate::repofile::hostname(),
        packs: packs
            .iter()
            .map(|(id, t)| MarkedPack {
                id: id.to_hex(),
                marked: t.to_string(),
            })
            .collect(),
    };
    let body = crate::compress::frame_meta(&serde_json::to_vec(&m).expect("mark serializes"));
    let bytes = repo.keys().seal(AAD, &body);
    let name = hex::encode(crate::id::storage_hash(&bytes));
    repo.backend()
        .write(FileType::Mark, &name, &bytes)
        .map_err(repo.berr())?;
    Ok(name)
}

/// Brings the cache's set of marked packs in line with the repository. Called
/// whenever the index is synced: a backup must see every mark that existed
/// when it looked at the index. An unreadable mark file is reported; prune
/// refuses to delete anything while one exists.
pub fn sync(repo: &Repository) -> Result<()> {
    let files = names(repo)?.join(",");
    if repo.cache().mark_files()?.as_deref() == Some(files.as_str()) {
        return Ok(());
    }
    let marks = read_all(repo)?;
    for (name, why) in &marks.unreadable {
        repo.notify(&format!("warning: mark file {name}: {why}"));
    }
    let ids: Vec<PackId> = marks.packs.keys().copied().collect();
    repo.cache().set_marked(&files, &ids)
}
