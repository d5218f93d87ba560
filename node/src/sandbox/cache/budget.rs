//! The disk cache's byte budget: which files it holds, how big they are, which modules
//! were used least recently, and which to evict to make room.
//!
//! A module's files (its upload and its compiled artifacts) are evicted together: an
//! artifact is only used beside its upload. The module being written is never evicted to
//! make room for itself; a single file bigger than the whole budget is not kept at all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The budget's index. Pure bookkeeping: the caller deletes the files it is told to.
pub(super) struct Budget {
    max_bytes: u64,
    bytes: u64,
    modules: HashMap<String, Entry>,
    /// Last-use stamp → module hash, least recently used first.
    order: BTreeMap<u64, String>,
    next_stamp: u64,
    evictions: u64,
}

#[derive(Default)]
struct Entry {
    files: HashMap<PathBuf, u64>,
    bytes: u64,
    /// Its key in `order`, once it has one.
    stamp: Option<u64>,
}

/// A file that cannot fit even in an empty cache.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooBig {
    pub(super) size: u64,
    pub(super) budget: u64,
}

impl Budget {
    pub(super) fn new(max_bytes: u64) -> Budget {
        Budget {
            max_bytes,
            bytes: 0,
            modules: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            evictions: 0,
        }
    }

    /// Bytes the indexed files take.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Modules evicted so far.
    pub(super) fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Records a file of module `hash` found on disk. Call it least recently used first
    /// (by modification time): each call makes the module the most recently used.
    pub(super) fn found(&mut self, hash: &str, file: &Path, size: u64) {
        self.set(hash, file, size);
        self.touch(hash);
    }

    /// The files to delete so that the budget holds what it indexes (after the budget was
    /// lowered, say): least recently used modules first.
    pub(super) fn trim(&mut self) -> Vec<PathBuf> {
        self.evict_until(0, None)
    }

    /// Makes room for `file` of module `hash`, `size` bytes (replacing what the index had
    /// for that file): returns the files of evicted modules, for the caller to delete,
    /// or [`TooBig`] if the file would not fit an empty cache (nothing changes then).
    pub(super) fn reserve(
        &mut self,
        hash: &str,
        file: &Path,
        size: u64,
    ) -> Result<Vec<PathBuf>, TooBig> {
        if size > self.max_bytes {
            return Err(TooBig {
                size,
                budget: self.max_bytes,
            });
        }
        let had = self.file_size(hash, file);
        let evicted = self.evict_until(size.saturating_sub(had), Some(hash));
        self.set(hash, file, size);
        self.touch(hash);
        Ok(evicted)
    }

    /// Forgets `file` of module `hash` (a failed write, a corrupt file deleted).
    pub(super) fn forget(&mut self, hash: &str, file: &Path) {
        let Some(entry) = self.modules.get_mut(hash) else {
            return;
        };
        if let Some(size) = entry.files.remove(file) {
            entry.bytes = entry.bytes.saturating_sub(size);
            self.bytes = self.bytes.saturating_sub(size);
        }
        if entry.files.is_empty() {
            if let Some(stamp) = entry.stamp {
                self.order.remove(&stamp);
            }
            self.modules.remove(hash);
        }
    }

    /// Module `hash` was just used.
    pub(super) fn touch(&mut self, hash: &str) {
        let stamp = self.next_stamp;
        let Some(entry) = self.modules.get_mut(hash) else {
            return;
        };
        if let Some(old) = entry.stamp.replace(stamp) {
            self.order.remove(&old);
        }
        self.order.insert(stamp, hash.to_owned());
        self.next_stamp += 1;
    }

    fn file_size(&self, hash: &str, file: &Path) -> u64 {
        self.modules
            .get(hash)
            .and_then(|e| e.files.get(file))
            .copied()
            .unwrap_or(0)
    }

    fn set(&mut self, hash: &str, file: &Path, size: u64) {
        let entry = self.modules.entry(hash.to_owned()).or_default();
        let old = entry.files.insert(file.to_path_buf(), size).unwrap_or(0);
        entry.bytes = entry.bytes.saturating_sub(old).saturating_add(size);
        self.bytes = self.bytes.saturating_sub(old).saturating_add(size);
    }

    /// Evicts least recently used modules other than `keep` until `extra` more bytes fit.
    fn evict_until(&mut self, extra: u64, keep: Option<&str>) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut kept = None;
        while self.bytes.saturating_add(extra) > self.max_bytes {
            let Some((stamp, hash)) = self.order.pop_first() else {
                break;
            };
            if keep == Some(hash.as_str()) {
                kept = Some((stamp, hash));
                continue;
            }
            if let Some(entry) = self.modules.remove(&hash) {
                self.bytes = self.bytes.saturating_sub(entry.bytes);
                self.evictions += 1;
                files.extend(entry.files.into_keys());
            }
        }
        if let Some((stamp, hash)) = kept {
            self.order.insert(stamp, hash);
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    #[test]
    fn least_recently_used_modules_go_first_with_all_their_files() {
        let mut budget = Budget::new(100);
        budget.found("a", &path("a.upload"), 20);
        budget.found("a", &path("a-x.cwasm"), 20);
        budget.found("b", &path("b.upload"), 30);
        budget.found("c", &path("c.upload"), 10);
        assert_eq!(budget.bytes(), 80);
        budget.touch("a");
        // 30 more: b (least recently used now) goes, a and c stay.
        let evicted = budget.reserve("d", &path("d.upload"), 30).unwrap();
        assert_eq!(evicted, [path("b.upload")]);
        assert_eq!(budget.bytes(), 80);
        // 50 more: c then a go, the module being written never does.
        let mut evicted = budget.reserve("d", &path("d-x.cwasm"), 50).unwrap();
        evicted.sort();
        assert_eq!(
            evicted,
            [path("a-x.cwasm"), path("a.upload"), path("c.upload")]
        );
        assert_eq!(budget.bytes(), 80);
        assert_eq!(budget.evictions(), 3);
    }

    #[test]
    fn a_file_over_the_whole_budget_is_refused_and_rewrites_count_once() {
        let mut budget = Budget::new(100);
        budget.found("a", &path("a.upload"), 60);
        assert_eq!(
            budget.reserve("b", &path("b.upload"), 101),
            Err(TooBig {
                size: 101,
                budget: 100
            })
        );
        assert_eq!(budget.bytes(), 60, "nothing changed");
        // Writing the same file again replaces its size.
        assert!(
            budget
                .reserve("a", &path("a.upload"), 90)
                .unwrap()
                .is_empty()
        );
        assert_eq!(budget.bytes(), 90);
        budget.forget("a", &path("a.upload"));
        assert_eq!(budget.bytes(), 0);
        assert!(
            budget
                .reserve("b", &path("b.upload"), 100)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn trim_brings_a_lowered_budget_back_within_bounds() {
        let mut budget = Budget::new(50);
        budget.found("old", &path("old.upload"), 40);
        budget.found("new", &path("new.upload"), 40);
        assert_eq!(budget.trim(), [path("old.upload")]);
        assert_eq!(budget.bytes(), 40);
    }
}
