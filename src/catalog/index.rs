//! An in-memory copy of the search index, for ranking, filters and facets.
//!
//! SQLite's FTS5 finds matches quickly, but its `bm25()` decodes position lists
//! and looks up each row's length per match, and facets need every match's row:
//! a query matching 10,000 of 100,000 datasets costs ~25 ms of CPU that way. This
//! index holds, per dataset, the token ids of its five FTS columns (produced by
//! FTS5's own tokenizer, see [`super::tokenize`]) and its facet fields, plus a
//! posting list per term. A search intersects postings, verifies phrases, scores
//! with the exact arithmetic of FTS5's `bm25()` and counts facets in one pass over
//! plain memory. `dataset_fts` stays the source of truth; the tests compare every
//! result with the SQL implementation.
//!
//! Freshness: every change to a dataset's searchable content appends its id to
//! `search_log` (migration 0008) in the changing transaction. A search opens a
//! read transaction, applies the log entries newer than the index, and answers
//! from the index and that same snapshot, so it never lags a committed change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use rusqlite::Connection;

use super::tokenize::Tokenizer;
use crate::authz::Visibility;
use crate::meta::{self, Zone};

/// FTS columns, in table order: name, description, tags, columns, metadata.
const COLUMNS: usize = 5;
/// The bm25 column weights of [`super::search`] (same order as `COLUMNS`).
pub(super) const WEIGHTS: [f64; COLUMNS] = [10.0, 2.0, 4.0, 4.0, 1.0];
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One term of a query phrase.
#[derive(Debug)]
pub(super) enum QueryTerm {
    /// A whole token.
    Exact(String),
    /// Any token starting with this (the last term of a `word*` phrase).
    Prefix(String),
}

/// What one search returns before the page's datasets are loaded.
pub(super) struct Outcome {
    /// Every passing match as (dataset id, bm25), the best `end` first, in order.
    pub hits: Vec<(i64, f64)>,
    pub total: u64,
    pub counts: super::search::FacetCounts,
}

/// The in-memory search index shared by all requests.
#[derive(Default)]
pub struct SearchIndex {
    state: RwLock<Option<Inner>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchIndex")
    }
}

impl SearchIndex {
    /// An empty index; it loads itself on the first search (or [`SearchIndex::refresh`]).
    pub fn new() -> SearchIndex {
        SearchIndex::default()
    }

    /// Brings the index up to date with the database (`conn`'s snapshot or newer).
    /// `conn` must be in a read transaction, as every [`meta::Db::read`] is.
    pub fn refresh(&self, conn: &Connection) -> Result<(), meta::Error> {
        self.catch_up(conn, log_head(conn)?)
    }

    /// Runs `f` on an index at least as new as `conn`'s read transaction (every
    /// [`meta::Db::read`] runs in one).
    pub(super) fn with_fresh<R>(
        &self,
        conn: &Connection,
        f: impl FnOnce(&Inner) -> R,
    ) -> Result<R, meta::Error> {
        let head = log_head(conn)?;
        {
            let state = self.state.read().map_err(|_| meta::Error::Poisoned)?;
            if let Some(inner) = state.as_ref()
                && inner.applied >= head.last
            {
                return Ok(f(inner));
            }
        }
        self.catch_up(conn, head)?;
        let state = self.state.read().map_err(|_| meta::Error::Poisoned)?;
        match state.as_ref() {
            Some(inner) => Ok(f(inner)),
            None => Err(meta::Error::Corrupt("search index missing".into())),
        }
    }

    fn catch_up(&self, conn: &Connection, head: LogHead) -> Result<(), meta::Error> {
        let mut state = self.state.write().map_err(|_| meta::Error::Poisoned)?;
        match state.as_mut() {
            Some(inner) if inner.applied >= head.last => {}
            // Entries after `applied` were pruned: start over.
            Some(inner) if head.first > inner.applied + 1 => {
                *state = Some(Inner::load(conn, head)?)
            }
            Some(inner) => {
                if let Err(e) = inner.apply_log(conn, head) {
                    // A half-applied log leaves the index unknown: drop it.
                    *state = None;
                    return Err(e);
                }
            }
            None => *state = Some(Inner::load(conn, head)?),
        }
        Ok(())
    }
}

/// The first and last `search_log` sequence numbers (0 when empty).
#[derive(Clone, Copy)]
struct LogHead {
    first: i64,
    last: i64,
}

fn log_head(conn: &Connection) -> Result<LogHead, meta::Error> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM search_log")?
        .query_row([], |r| {
            Ok(LogHead {
                first: r.get(0)?,
                last: r.get(1)?,
            })
        })?)
}

/// Strings interned to small ids (owners, formats, tag keys and values).
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
}

/// The filter fields of a dataset (its `dataset_search` row), strings interned.
struct DocMeta {
    zone: Zone,
    owner: u32,
    format: Option<u32>,
    bucket_id: i64,
    /// Tag pair ids (see `Inner::tags`).
    tags: Box<[u32]>,
}

/// One dataset: its tokens (all columns, in order) and where each column ends.
struct Doc {
    id: i64,
    /// The dataset's name, for listings without a query (ordered by name).
    name: Box<str>,
    tokens: Box<[u32]>,
    ends: [u32; COLUMNS],
    /// `None` if the dataset has no `dataset_search` row (never matches, as in SQL).
    meta: Option<DocMeta>,
}

impl Doc {
    /// The tokens of column `c`.
    fn column(&self, c: usize) -> &[u32] {
        let start = if c == 0 { 0 } else { self.ends[c - 1] as usize };
        &self.tokens[start..self.ends[c] as usize]
    }
}

/// The index proper.
pub(super) struct Inner {
    /// The last `search_log` entry applied.
    applied: i64,
    /// Term -> term id, sorted so a prefix is a range.
    terms: BTreeMap<Box<str>, u32>,
    /// Term id -> slots of the documents holding it, ascending.
    postings: Vec<Vec<u32>>,
    docs: Vec<Option<Doc>>,
    /// Slots ordered by (name, id): listings without a query walk this.
    by_name: Vec<u32>,
    free: Vec<u32>,
    slots: HashMap<i64, u32>,
    /// Rows and tokens in all rows, as FTS5 counts them for bm25.
    rows: i64,
    total_tokens: i64,
    owners: Interner,
    formats: Interner,
    /// Tag pairs, as `<key length>:<key><value>` (see [`tag_pair`]).
    tags: Interner,
}

/// The columns read for a document: FTS text and the `dataset_search` row.
const DOC_SELECT: &str = "SELECT f.rowid, f.name, f.description, f.tags, f.columns, f.metadata,
        s.zone, s.owner, s.format, s.bucket_id, s.tags
    FROM dataset_fts f LEFT JOIN dataset_search s ON s.id = f.rowid";

impl Inner {
    fn empty(applied: i64) -> Inner {
        Inner {
            applied,
            terms: BTreeMap::new(),
            postings: Vec::new(),
            docs: Vec::new(),
            by_name: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            rows: 0,
            total_tokens: 0,
            owners: Interner::default(),
            formats: Interner::default(),
            tags: Interner::default(),
        }
    }

    /// Loads every dataset of the snapshot.
    fn load(conn: &Connection, head: LogHead) -> Result<Inner, meta::Error> {
        let started = std::time::Instant::now();
        let mut inner = Inner::empty(head.last);
        let mut tokenizer = Tokenizer::new(conn)?;
        let mut stmt = conn.prepare(DOC_SELECT)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let doc = inner.read_doc(&mut tokenizer, r)?;
            inner.insert(doc, false);
        }
        for p in &mut inner.postings {
            p.sort_unstable();
        }
        let mut by_name = std::mem::take(&mut inner.by_name);
        by_name.sort_unstable_by(|a, b| inner.name_order(*a, *b));
        inner.by_name = by_name;
        tracing::info!(
            datasets = inner.rows,
            terms = inner.terms.len(),
            ms = started.elapsed().as_millis() as u64,
            "search index loaded"
        );
        Ok(inner)
    }

    /// Re-reads the datasets logged after `applied`.
    fn apply_log(&mut self, conn: &Connection, head: LogHead) -> Result<(), meta::Error> {
        let ids: HashSet<i64> = conn
            .prepare_cached("SELECT dataset_id FROM search_log WHERE seq > ?1 AND seq <= ?2")?
            .query_map([self.applied, head.last], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut tokenizer = Tokenizer::new(conn)?;
        let mut stmt = conn.prepare_cached(&format!("{DOC_SELECT} WHERE f.rowid = ?1"))?;
        for id in ids {
            let mut rows = stmt.query([id])?;
            let Some(r) = rows.next()? else {
                self.remove(id);
                continue;
            };
            let doc = self.read_doc(&mut tokenizer, r)?;
            // Same text (a zone move, an owner change...): only the filter fields
            // change, and the postings (costly to edit for common terms) stay.
            if let Some(old) = self
                .slots
                .get(&id)
                .and_then(|s| self.docs.get_mut(*s as usize))
                && let Some(old) = old.as_mut()
                && old.tokens == doc.tokens
                && old.ends == doc.ends
                && old.name == doc.name
            {
                old.meta = doc.meta;
                continue;
            }
            self.remove(id);
            self.insert(doc, true);
        }
        self.applied = head.last;
        Ok(())
    }

    /// Builds a document from a [`DOC_SELECT`] row.
    fn read_doc(
        &mut self,
        tokenizer: &mut Tokenizer,
        r: &rusqlite::Row,
    ) -> Result<Doc, meta::Error> {
        let id: i64 = r.get(0)?;
        let mut tokens = Vec::new();
        let mut ends = [0u32; COLUMNS];
        for (c, end) in ends.iter_mut().enumerate() {
            if let Some(text) = text(r, 1 + c)? {
                tokenizer.tokens(text, |t| tokens.push(self.term(t)))?;
            }
            *end = tokens.len() as u32;
        }
        let meta = match text(r, 6)? {
            None => None,
            Some(zone) => {
                let zone = Zone::parse(zone)
                    .ok_or_else(|| meta::Error::Corrupt(format!("dataset {id}: zone {zone:?}")))?;
                let owner = self.owners.intern(text(r, 7)?.unwrap_or_default());
                let format = text(r, 8)?.map(|f| self.formats.intern(f));
                let mut tags = Vec::new();
                let mut pair = String::new();
                super::search::each_tag(text(r, 10)?.unwrap_or_default(), |k, v| {
                    tag_pair(&mut pair, k, v);
                    tags.push(self.tags.intern(&pair));
                })?;
                let tags = tags.into();
                Some(DocMeta {
                    zone,
                    owner,
                    format,
                    bucket_id: r.get(9)?,
                    tags,
                })
            }
        };
        Ok(Doc {
            id,
            name: text(r, 1)?.unwrap_or_default().into(),
            tokens: tokens.into(),
            ends,
            meta,
        })
    }

    /// The id of term `t`, added if new.
    fn term(&mut self, t: &str) -> u32 {
        if let Some(id) = self.terms.get(t) {
            return *id;
        }
        let id = self.postings.len() as u32;
        self.postings.push(Vec::new());
        self.terms.insert(t.into(), id);
        id
    }

    /// Adds `doc`; `sorted` keeps postings sorted (else the caller sorts them).
    fn insert(&mut self, doc: Doc, sorted: bool) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.docs.push(None);
                (self.docs.len() - 1) as u32
            }
        };
        let mut terms: Vec<u32> = doc.tokens.to_vec();
        terms.sort_unstable();
        terms.dedup();
        for t in terms {
            let p = &mut self.postings[t as usize];
            if sorted {
                if let Err(at) = p.binary_search(&slot) {
                    p.insert(at, slot);
                }
            } else {
                p.push(slot);
            }
        }
        self.rows += 1;
        self.total_tokens += doc.tokens.len() as i64;
        self.slots.insert(doc.id, slot);
        let at = if sorted {
            self.name_position(&doc.name, doc.id)
        } else {
            self.by_name.len()
        };
        self.by_name.insert(at, slot);
        self.docs[slot as usize] = Some(doc);
    }

    /// The (name, id) order of two live slots.
    fn name_order(&self, a: u32, b: u32) -> std::cmp::Ordering {
        let key = |s: u32| {
            self.docs
                .get(s as usize)
                .and_then(Option::as_ref)
                .map(|d| (&*d.name, d.id))
        };
        key(a).cmp(&key(b))
    }

    /// Where (name, id) is, or belongs, in `by_name`.
    fn name_position(&self, name: &str, id: i64) -> usize {
        self.by_name.partition_point(|s| {
            self.docs
                .get(*s as usize)
                .and_then(Option::as_ref)
                .is_some_and(|d| (&*d.name, d.id) < (name, id))
        })
    }

    /// Removes dataset `id` if present.
    fn remove(&mut self, id: i64) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        if let Some(doc) = self.docs.get(slot as usize).and_then(Option::as_ref) {
            let at = self.name_position(&doc.name, doc.id);
            if self.by_name.get(at) == Some(&slot) {
                self.by_name.remove(at);
            }
        }
        let Some(doc) = self.docs.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let mut terms: Vec<u32> = doc.tokens.to_vec();
        terms.sort_unstable();
        terms.dedup();
        for t in terms {
            let p = &mut self.postings[t as usize];
            if let Ok(at) = p.binary_search(&slot) {
                p.remove(at);
            }
        }
        self.rows -= 1;
        self.total_tokens -= doc.tokens.len() as i64;
        self.free.push(slot);
    }

    /// Runs a ranked search. `phrases` are the query's phrases as tokens (each
    /// non-empty; see [`super::search`]), ANDed. `end` is how many best hits the
    /// caller needs in order.
    pub(super) fn search(
        &self,
        phrases: &[Vec<QueryTerm>],
        query: &super::search::SearchQuery,
        end: usize,
    ) -> Outcome {
        let empty = || Outcome {
            hits: Vec::new(),
            total: 0,
            counts: Default::default(),
        };
        let Some(filter) = Filter::resolve(self, query) else {
            return empty();
        };
        let mut resolved = Vec::with_capacity(phrases.len());
        for p in phrases {
            match self.resolve(p) {
                Some(r) => resolved.push(r),
                None => return empty(),
            }
        }
        // Per phrase: its candidate documents and how many documents hold it.
        let cands: Vec<Candidates> = resolved.iter().map(|p| self.candidates(p)).collect();
        let idf: Vec<f64> = resolved
            .iter()
            .zip(&cands)
            .map(|(p, c)| {
                let hits = self.documents_with(p, c);
                let idf = ((self.rows - hits) as f64 + 0.5) / (hits as f64 + 0.5);
                let idf = idf.ln();
                if idf <= 0.0 { 1e-6 } else { idf }
            })
            .collect();
        let avgdl = self.total_tokens as f64 / self.rows as f64;
        let Some(driver) = (0..cands.len()).min_by_key(|&i| cands[i].len()) else {
            return empty();
        };
        let mut counts = Counts::new(self);
        let mut hits = Vec::new();
        let mut freqs = vec![0.0f64; resolved.len()];
        cands[driver].for_each(|slot| {
            if !cands
                .iter()
                .enumerate()
                .all(|(i, c)| i == driver || c.contains(slot))
            {
                return;
            }
            let Some(doc) = self.docs.get(slot as usize).and_then(Option::as_ref) else {
                return;
            };
            let Some(meta) = doc.meta.as_ref() else {
                return;
            };
            if !filter.passes(doc.id, meta) {
                return;
            }
            for (f, p) in freqs.iter_mut().zip(&resolved) {
                *f = weighted_frequency(doc, p);
                if *f == 0.0 {
                    return;
                }
            }
            // The arithmetic of FTS5's fts5Bm25Function, operation for operation,
            // so scores (and ties) are identical to `bm25()`.
            let d = doc.tokens.len() as f64;
            let mut score = 0.0;
            for (f, idf) in freqs.iter().zip(&idf) {
                score += idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * d / avgdl)));
            }
            counts.add(meta);
            hits.push((doc.id, -score));
        });
        let total = hits.len() as u64;
        super::search::keep_best(&mut hits, end);
        Outcome {
            hits,
            total,
            counts: counts.named(self),
        }
    }

    /// Lists every dataset passing the filters, by name then id (as the SQL listing
    /// orders them): `hits` carries the first `end` with a zero score. One pass in
    /// slot order counts the facets and marks who passes; a walk of `by_name` then
    /// picks the page without sorting anything.
    pub(super) fn list(&self, query: &super::search::SearchQuery, end: usize) -> Outcome {
        let Some(filter) = Filter::resolve(self, query) else {
            return Outcome {
                hits: Vec::new(),
                total: 0,
                counts: Default::default(),
            };
        };
        let mut counts = Counts::new(self);
        let mut passing = Bits::new(self.docs.len());
        let mut total = 0u64;
        for (slot, doc) in self.docs.iter().enumerate() {
            if let Some(doc) = doc
                && let Some(meta) = doc.meta.as_ref()
                && filter.passes(doc.id, meta)
            {
                counts.add(meta);
                passing.set(slot as u32);
                total += 1;
            }
        }
        let hits = self
            .by_name
            .iter()
            .filter(|s| passing.get(**s))
            .take(end)
            .filter_map(|s| self.docs.get(*s as usize)?.as_ref().map(|d| (d.id, 0.0)))
            .collect();
        Outcome {
            hits,
            total,
            counts: counts.named(self),
        }
    }

    /// Maps a phrase's terms to term ids; `None` if it cannot match anything.
    fn resolve(&self, phrase: &[QueryTerm]) -> Option<Vec<Resolved>> {
        let mut out = Vec::with_capacity(phrase.len());
        for t in phrase {
            out.push(match t {
                QueryTerm::Exact(s) => Resolved::Term(*self.terms.get(s.as_str())?),
                QueryTerm::Prefix(p) => {
                    let mut set = Bits::new(self.postings.len());
                    let mut any = false;
                    for (term, id) in self.terms.range::<str, _>((
                        std::ops::Bound::Included(p.as_str()),
                        std::ops::Bound::Unbounded,
                    )) {
                        if !term.starts_with(p.as_str()) {
                            break;
                        }
                        set.set(*id);
                        any = true;
                    }
                    if !any {
                        return None;
                    }
                    Resolved::Prefix(set)
                }
            });
        }
        (!out.is_empty()).then_some(out)
    }

    /// The documents that may hold `phrase`: the postings of its rarest whole
    /// term, or for a lone prefix the union of its terms' postings.
    fn candidates<'a>(&'a self, phrase: &[Resolved]) -> Candidates<'a> {
        let rarest = phrase
            .iter()
            .filter_map(|t| match t {
                Resolved::Term(id) => Some(self.postings[*id as usize].as_slice()),
                Resolved::Prefix(_) => None,
            })
            .min_by_key(|p| p.len());
        if let Some(p) = rarest {
            return Candidates::List(p);
        }
        let mut docs = Bits::new(self.docs.len());
        let mut n = 0;
        if let Some(Resolved::Prefix(terms)) = phrase.first() {
            terms.for_each(|t| {
                for slot in &self.postings[t as usize] {
                    if !docs.get(*slot) {
                        docs.set(*slot);
                        n += 1;
                    }
                }
            });
        }
        Candidates::Bits(docs, n)
    }

    /// How many documents hold `phrase` (FTS5's `nHit` for its IDF).
    fn documents_with(&self, phrase: &[Resolved], cands: &Candidates) -> i64 {
        if phrase.len() == 1 {
            return cands.len() as i64;
        }
        let mut n = 0;
        cands.for_each(|slot| {
            if let Some(doc) = self.docs.get(slot as usize).and_then(Option::as_ref)
                && weighted_frequency(doc, phrase) > 0.0
            {
                n += 1;
            }
        });
        n
    }
}

/// A query term resolved against the vocabulary.
enum Resolved {
    Term(u32),
    Prefix(Bits),
}

impl Resolved {
    fn matches(&self, token: u32) -> bool {
        match self {
            Resolved::Term(t) => *t == token,
            Resolved::Prefix(set) => set.get(token),
        }
    }
}

/// The weighted number of occurrences of `phrase` in `doc`: each occurrence counts
/// its column's weight, as FTS5 sums `xInst` instances in `bm25()`.
fn weighted_frequency(doc: &Doc, phrase: &[Resolved]) -> f64 {
    let mut f = 0.0;
    for (c, w) in WEIGHTS.iter().enumerate() {
        let col = doc.column(c);
        if col.len() < phrase.len() {
            continue;
        }
        for start in 0..=col.len() - phrase.len() {
            if phrase
                .iter()
                .zip(&col[start..])
                .all(|(t, tok)| t.matches(*tok))
            {
                f += w;
            }
        }
    }
    f
}

/// A fixed-size bit set.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn for_each(&self, mut f: impl FnMut(u32)) {
        for (i, w) in self.0.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                let b = w.trailing_zeros();
                f(i as u32 * 64 + b);
                w &= w - 1;
            }
        }
    }
}

/// The documents a phrase may match.
enum Candidates<'a> {
    List(&'a [u32]),
    Bits(Bits, usize),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Candidates::List(l) => l.len(),
            Candidates::Bits(_, n) => *n,
        }
    }
    fn contains(&self, slot: u32) -> bool {
        match self {
            Candidates::List(l) => l.binary_search(&slot).is_ok(),
            Candidates::Bits(b, _) => b.get(slot),
        }
    }
    fn for_each(&self, mut f: impl FnMut(u32)) {
        match self {
            Candidates::List(l) => l.iter().for_each(|s| f(*s)),
            Candidates::Bits(b, _) => b.for_each(f),
        }
    }
}

/// The query's filters and visibility, resolved to interned ids.
struct Filter {
    zone: Option<Zone>,
    owner: Option<u32>,
    format: Option<u32>,
    tags: Vec<u32>,
    visible: Option<Visible>,
}

/// A member's visibility rule (see [`Visibility::sql`]).
struct Visible {
    owner: Option<u32>,
    zones: Vec<Zone>,
    bucket_ids: Vec<i64>,
    dataset_ids: HashSet<i64>,
}

impl Filter {
    /// `None` if a filter names a value no dataset has (nothing can pass).
    fn resolve(index: &Inner, q: &super::search::SearchQuery) -> Option<Filter> {
        let owner = match &q.owner {
            Some(o) => Some(index.owners.get(o)?),
            None => None,
        };
        let format = match &q.format {
            Some(f) => Some(index.formats.get(f)?),
            None => None,
        };
        let mut tags = Vec::with_capacity(q.tags.len());
        let mut pair = String::new();
        for (k, v) in &q.tags {
            tag_pair(&mut pair, k, v);
            tags.push(index.tags.get(&pair)?);
        }
        let visible = match &q.visibility {
            Visibility { restricted: None } => None,
            Visibility {
                restricted: Some(v),
            } => Some(Visible {
                owner: index.owners.get(&v.owner),
                zones: v.zones.clone(),
                bucket_ids: v.bucket_ids.clone(),
                dataset_ids: v.dataset_ids.iter().copied().collect(),
            }),
        };
        Some(Filter {
            zone: q.zone,
            owner,
            format,
            tags,
            visible,
        })
    }

    fn passes(&self, id: i64, m: &DocMeta) -> bool {
        if self.zone.is_some_and(|z| z != m.zone)
            || self.owner.is_some_and(|o| o != m.owner)
            || self.format.is_some_and(|f| Some(f) != m.format)
            || !self.tags.iter().all(|t| m.tags.contains(t))
        {
            return false;
        }
        match &self.visible {
            None => true,
            Some(v) => {
                v.owner == Some(m.owner)
                    || v.zones.contains(&m.zone)
                    || v.bucket_ids.contains(&m.bucket_id)
                    || v.dataset_ids.contains(&id)
            }
        }
    }
}

/// Facet counters, indexed by interned id (no hashing per match).
struct Counts {
    zone: [u64; 3],
    format: Vec<u64>,
    owner: Vec<u64>,
    tags: Vec<u64>,
}

impl Counts {
    fn new(index: &Inner) -> Counts {
        Counts {
            zone: [0; 3],
            format: vec![0; index.formats.names.len()],
            owner: vec![0; index.owners.names.len()],
            tags: vec![0; index.tags.names.len()],
        }
    }

    fn add(&mut self, m: &DocMeta) {
        let bump = |v: &mut [u64], i: u32| {
            if let Some(n) = v.get_mut(i as usize) {
                *n += 1;
            }
        };
        bump(&mut self.zone, zone_index(m.zone));
        if let Some(f) = m.format {
            bump(&mut self.format, f);
        }
        bump(&mut self.owner, m.owner);
        for t in &m.tags {
            bump(&mut self.tags, *t);
        }
    }

    fn named(self, index: &Inner) -> super::search::FacetCounts {
        let named = |counts: Vec<u64>, names: &Interner| {
            counts
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(i, n)| (names.name(i as u32).to_string(), n))
                .collect()
        };
        let mut out = super::search::FacetCounts {
            zone: Zone::ALL
                .into_iter()
                .filter(|z| self.zone[zone_index(*z) as usize] > 0)
                .map(|z| (z.as_str().to_string(), self.zone[zone_index(z) as usize]))
                .collect(),
            format: named(self.format, &index.formats),
            owner: named(self.owner, &index.owners),
            tags: HashMap::new(),
        };
        for (i, n) in self.tags.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let pair = index.tags.name(i as u32);
            let (k, v) = split_tag_pair(pair);
            out.tags
                .entry(k.to_string())
                .or_default()
                .insert(v.to_string(), n);
        }
        out
    }
}

fn zone_index(z: Zone) -> u32 {
    match z {
        Zone::Raw => 0,
        Zone::Transformed => 1,
        Zone::Curated => 2,
    }
}

/// Writes the interned form of tag `k=v` to `out`: `<key length>:<key><value>`,
/// unambiguous whatever the key and value hold.
fn tag_pair(out: &mut String, k: &str, v: &str) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(out, "{}:{k}{v}", k.len());
}

/// Splits a [`tag_pair`] back into key and value.
fn split_tag_pair(pair: &str) -> (&str, &str) {
    let Some((len, rest)) = pair.split_once(':') else {
        return (pair, "");
    };
    let at = len.parse().unwrap_or(0);
    match (rest.get(..at), rest.get(at..)) {
        (Some(k), Some(v)) => (k, v),
        _ => (rest, ""),
    }
}

/// Column `i` of `r` as text (`None` for NULL).
fn text<'r>(r: &'r rusqlite::Row, i: usize) -> Result<Option<&'r str>, meta::Error> {
    r.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| meta::Error::Corrupt(format!("search index column {i}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_pairs_round_trip() {
        let mut out = String::new();
        for (k, v) in [
            ("a", "b"),
            ("k:1", "2:v"),
            ("", "x"),
            ("é\0", ""),
            ("3", "4:x"),
        ] {
            tag_pair(&mut out, k, v);
            assert_eq!(split_tag_pair(&out), (k, v));
        }
    }
}
