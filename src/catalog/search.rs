//! Full-text search over datasets with SQLite FTS5, bm25 ranking, filters and facets.
//!
//! The index (`dataset_fts`, rowid = dataset id) holds five columns: name,
//! description, tags (`key value` pairs), column names (of the latest crawled schema,
//! partition columns included) and metadata values. It is rewritten in the same
//! transaction as every change to the dataset, so search never sees a stale row.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::Error;
use super::datasets::{Dataset, dataset_in};
use super::index::{QueryTerm, SearchIndex};
use super::tokenize::Tokenizer;
use crate::meta::{self, Db, Zone};

/// bm25 weights of (name, description, tags, columns, metadata): a hit in the name
/// counts most, then tags and columns, then prose. The in-memory index uses the
/// same weights ([`super::index::WEIGHTS`]).
const RANK: &str = "bm25(dataset_fts, 10.0, 2.0, 4.0, 4.0, 1.0)";

/// Tag facets returned (the most frequent `key=value` pairs).
const TAG_FACETS: usize = 20;

/// Facet counters while scanning the matches (hash maps: no allocation per row
/// for values already seen).
#[derive(Default)]
pub(super) struct FacetCounts {
    pub zone: std::collections::HashMap<String, u64>,
    pub format: std::collections::HashMap<String, u64>,
    pub owner: std::collections::HashMap<String, u64>,
    /// key -> value -> count (nested so that counting a seen tag allocates nothing).
    pub tags: std::collections::HashMap<String, std::collections::HashMap<String, u64>>,
}

fn count(map: &mut std::collections::HashMap<String, u64>, v: Option<&str>) {
    let Some(v) = v else { return };
    match map.get_mut(v) {
        Some(n) => *n += 1,
        None => {
            map.insert(v.to_string(), 1);
        }
    }
}

/// Largest page of results.
pub const MAX_LIMIT: usize = 100;

/// Collects the string and number leaves of a JSON value.
fn flatten(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        serde_json::Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        serde_json::Value::Bool(_) | serde_json::Value::Null => {}
        serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| flatten(x, out)),
    }
}

/// (Re)writes the index row of dataset `id`.
pub fn index(conn: &Connection, id: i64) -> Result<(), meta::Error> {
    unindex(conn, id)?;
    let Some(d) = dataset_in(conn, id)? else {
        return Ok(());
    };
    let mut tags = String::new();
    for (k, v) in &d.tags {
        tags.push_str(k);
        tags.push(' ');
        tags.push_str(v);
        tags.push(' ');
    }
    let mut metadata = String::new();
    flatten(
        &serde_json::Value::Object(d.metadata.clone()),
        &mut metadata,
    );
    let columns = super::crawl::latest_column_names(conn, id)?.join(" ");
    conn.prepare_cached(
        "INSERT INTO dataset_fts (rowid, name, description, tags, columns, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, d.name, d.description, tags, columns, metadata])?;
    Ok(())
}

/// Removes dataset `id` from the index.
pub fn unindex(conn: &Connection, id: i64) -> Result<(), meta::Error> {
    conn.prepare_cached("DELETE FROM dataset_fts WHERE rowid = ?1")?
        .execute([id])?;
    // Tell the in-memory index (changes to `datasets` itself log by trigger).
    conn.prepare_cached("INSERT INTO search_log (dataset_id) VALUES (?1)")?
        .execute([id])?;
    Ok(())
}

/// Turns user input into an FTS5 query: every whitespace-separated term becomes a
/// quoted phrase of its word characters (so `sales_daily` finds "sales daily" and no
/// input can inject FTS5 syntax); a trailing `*` makes it a prefix query. Terms are
/// ANDed. `None` if the input holds no word at all.
pub fn fts_query(q: &str) -> Option<String> {
    let parts: Vec<String> = phrases(q)
        .into_iter()
        .map(|p| format!("\"{}\"{}", p.text, if p.prefix { "*" } else { "" }))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// One phrase of a query: word characters separated by single spaces.
struct Phrase {
    text: String,
    prefix: bool,
}

/// The phrases of user input, as [`fts_query`] describes.
fn phrases(q: &str) -> Vec<Phrase> {
    let mut out = Vec::new();
    for term in q.split_whitespace() {
        let words: Vec<&str> = term
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if !words.is_empty() {
            out.push(Phrase {
                text: words.join(" "),
                prefix: term.ends_with('*'),
            });
        }
    }
    out
}

/// The query's phrases as tokens of the index's tokenizer (what FTS5 does with
/// the [`fts_query`] string); `None` if a phrase has no token, a case left to SQL.
fn query_terms(conn: &Connection, q: &str) -> Result<Option<Vec<Vec<QueryTerm>>>, meta::Error> {
    let mut tokenizer = Tokenizer::new(conn)?;
    let mut out = Vec::new();
    for p in phrases(q) {
        let mut words = Vec::new();
        tokenizer.tokens(&p.text, |t| words.push(t.to_string()))?;
        let Some(last) = words.pop() else {
            return Ok(None);
        };
        let mut terms: Vec<QueryTerm> = words.into_iter().map(QueryTerm::Exact).collect();
        terms.push(if p.prefix {
            QueryTerm::Prefix(last)
        } else {
            QueryTerm::Exact(last)
        });
        out.push(terms);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// A search request.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Free text; `None` lists everything that passes the filters, by name.
    pub q: Option<String>,
    pub zone: Option<Zone>,
    pub owner: Option<String>,
    pub format: Option<String>,
    pub tags: Vec<(String, String)>,
    pub offset: usize,
    pub limit: usize,
    /// What the caller may read: hits, totals and facets count only these.
    pub visibility: crate::authz::Visibility,
}

/// One search hit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// Relevance (higher is better); absent without a query.
    pub score: Option<f64>,
    pub dataset: Dataset,
}

/// Counts of the matching datasets by facet value.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Facets {
    pub zone: BTreeMap<String, u64>,
    pub format: BTreeMap<String, u64>,
    pub owner: BTreeMap<String, u64>,
    /// `key=value` -> count, the 20 most frequent tags.
    pub tags: BTreeMap<String, u64>,
}

/// Search results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    /// Number of datasets matching the query and filters.
    pub total: u64,
    pub results: Vec<Hit>,
    pub facets: Facets,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The `WITH ... FROM ... WHERE ...` part of the search query.
///
/// The full-text matches are materialized first and then joined to `datasets`
/// (CROSS JOIN fixes the order): left to itself, the planner may walk a filter's
/// index and probe the FTS index once per dataset, which is orders of magnitude slower.
fn from_where(
    query: &SearchQuery,
    fts: Option<&str>,
    args: &mut Vec<rusqlite::types::Value>,
) -> (String, String) {
    let (with, mut sql) = if let Some(f) = fts {
        args.push(f.to_string().into());
        (
            format!(
                "WITH m AS MATERIALIZED (SELECT rowid AS id, {RANK} AS score FROM dataset_fts
                 WHERE dataset_fts MATCH ?) "
            ),
            " FROM m CROSS JOIN datasets d ON d.id = m.id WHERE 1".to_string(),
        )
    } else {
        (String::new(), " FROM datasets d WHERE 1".to_string())
    };
    push_filters(query, &mut sql, args);
    (with, sql)
}

/// Appends the query's filters and visibility rule as conditions on the dataset row
/// `d` (a `datasets` or `dataset_search` row: both have the columns used).
fn push_filters(query: &SearchQuery, sql: &mut String, args: &mut Vec<rusqlite::types::Value>) {
    if let Some(z) = query.zone {
        sql.push_str(" AND d.zone = ?");
        args.push(z.as_str().to_string().into());
    }
    if let Some(o) = &query.owner {
        sql.push_str(" AND d.owner = ?");
        args.push(o.clone().into());
    }
    if let Some(f) = &query.format {
        sql.push_str(" AND d.format = ?");
        args.push(f.clone().into());
    }
    if let Some(cond) = query.visibility.sql(args) {
        sql.push_str(" AND ");
        sql.push_str(&cond);
    }
    for (k, v) in &query.tags {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM dataset_tags ft WHERE ft.dataset_id = d.id
              AND ft.key = ? AND ft.value = ?)",
        );
        args.push(k.clone().into());
        args.push(v.clone().into());
    }
}

/// The reference implementation: materializes every match with its bm25 score,
/// joins it to `datasets` and sorts in SQL. Used for listings without a query (by
/// name), and kept as the oracle the tests and the benchmark compare
/// [`run_ranked`] against.
fn run_reference(
    conn: &Connection,
    query: &SearchQuery,
    fts: Option<&str>,
) -> Result<SearchResult, meta::Error> {
    let mut args = Vec::new();
    let (with, fw) = from_where(query, fts, &mut args);
    let (score, order) = if fts.is_some() {
        ("m.score", "score, d.id")
    } else {
        ("0.0", "d.name, d.id")
    };
    // One pass over the matches gives the ranking and every facet: a second query
    // for the tag facets would evaluate the full-text match again.
    let sql = format!(
        "{with}SELECT d.id, {score} AS score, d.zone, d.format, d.owner, d.tags{fw} ORDER BY {order}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut counts = FacetCounts::default();
    let mut page: Vec<(i64, f64)> = Vec::new();
    let mut total = 0u64;
    let end = query.offset.saturating_add(query.limit);
    while let Some(r) = rows.next()? {
        let i = total as usize;
        total += 1;
        count(&mut counts.zone, r.get_ref(2)?.as_str().ok());
        count(
            &mut counts.format,
            r.get_ref(3)?.as_str_or_null().ok().flatten(),
        );
        count(&mut counts.owner, r.get_ref(4)?.as_str().ok());
        if let Ok(tags) = r.get_ref(5)?.as_str() {
            let tags: BTreeMap<&str, &str> =
                serde_json::from_str(tags).map_err(|e| meta::Error::Corrupt(e.to_string()))?;
            for (k, v) in tags {
                count_tag(&mut counts, k, v);
            }
        }
        if i >= query.offset && i < end {
            page.push((r.get(0)?, r.get(1)?));
        }
    }
    drop(rows);
    finish(conn, counts, &page, fts.is_some(), total, end)
}

/// Builds the response from the facet counters and the page of `(id, bm25)`.
fn finish(
    conn: &Connection,
    counts: FacetCounts,
    page: &[(i64, f64)],
    scored: bool,
    total: u64,
    end: usize,
) -> Result<SearchResult, meta::Error> {
    let mut tags: Vec<((String, String), u64)> = counts
        .tags
        .into_iter()
        .flat_map(|(k, values)| values.into_iter().map(move |(v, n)| ((k.clone(), v), n)))
        .collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let facets = Facets {
        zone: counts.zone.into_iter().collect(),
        format: counts.format.into_iter().collect(),
        owner: counts.owner.into_iter().collect(),
        tags: tags
            .into_iter()
            .take(TAG_FACETS)
            .map(|((k, v), n)| (format!("{k}={v}"), n))
            .collect(),
    };
    let mut results = Vec::with_capacity(page.len());
    for (id, s) in page {
        // A hit can be missing from this snapshot only if a newer search already
        // advanced the shared index past it: skip it rather than misalign.
        if let Some(dataset) = dataset_in(conn, *id)? {
            results.push(Hit {
                // bm25 is "smaller is better" and negative; flip it for humans.
                score: scored.then_some(-s),
                dataset,
            });
        }
    }
    let next_cursor = ((end as u64) < total).then(|| end.to_string());
    Ok(SearchResult {
        total,
        results,
        facets,
        next_cursor,
    })
}

/// Counts one tag pair.
fn count_tag(counts: &mut FacetCounts, k: &str, v: &str) {
    match counts.tags.get_mut(k) {
        Some(values) => count(values, Some(v)),
        None => {
            let mut values = std::collections::HashMap::new();
            values.insert(v.to_string(), 1);
            counts.tags.insert(k.to_string(), values);
        }
    }
}

/// Decodes `dataset_search.tags` (per pair `<key bytes>,<value bytes>,<key><value>`,
/// see migration 0007) and calls `f` on each pair.
pub(super) fn each_tag(enc: &str, mut f: impl FnMut(&str, &str)) -> Result<(), meta::Error> {
    let corrupt = || meta::Error::Corrupt(format!("dataset_search.tags {enc:?}"));
    let mut rest = enc;
    while !rest.is_empty() {
        let (klen, r) = rest.split_once(',').ok_or_else(corrupt)?;
        let (vlen, r) = r.split_once(',').ok_or_else(corrupt)?;
        let klen: usize = klen.parse().map_err(|_| corrupt())?;
        let vlen: usize = vlen.parse().map_err(|_| corrupt())?;
        let k = r.get(..klen).ok_or_else(corrupt)?;
        let v = r.get(klen..klen + vlen).ok_or_else(corrupt)?;
        f(k, v);
        rest = &r[klen + vlen..];
    }
    Ok(())
}

/// A full-text search in SQL, in one pass over the matches, joined to the narrow
/// `dataset_search` table (migration 0007). Used when the in-memory index cannot
/// express a query, and as a second oracle in the tests.
///
/// The filters and the visibility rule are SQL conditions on the joined row, so
/// SQLite evaluates them before the result columns: bm25 (the dominant cost per
/// match) is computed only for matches that pass, and never sorted in SQL. Facets
/// and the total count every passing match; the page is the `offset + limit` best
/// by (bm25, id), chosen in Rust with a partial selection. Scores, order, total
/// and facets are identical to [`run_reference`] (tested).
fn run_ranked(
    conn: &Connection,
    query: &SearchQuery,
    fts: &str,
) -> Result<SearchResult, meta::Error> {
    let mut args: Vec<rusqlite::types::Value> = vec![fts.to_string().into()];
    // The table, not an alias: bm25() takes the FTS table's own name. CROSS JOIN
    // keeps the full-text index as the outer loop.
    let mut sql = format!(
        "SELECT dataset_fts.rowid, d.zone, d.format, d.owner, d.tags, {RANK}
         FROM dataset_fts CROSS JOIN dataset_search d ON d.id = dataset_fts.rowid
         WHERE dataset_fts MATCH ?"
    );
    push_filters(query, &mut sql, &mut args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut counts = FacetCounts::default();
    let mut hits: Vec<(i64, f64)> = Vec::new();
    while let Some(r) = rows.next()? {
        count(&mut counts.zone, r.get_ref(1)?.as_str().ok());
        count(
            &mut counts.format,
            r.get_ref(2)?.as_str_or_null().ok().flatten(),
        );
        count(&mut counts.owner, r.get_ref(3)?.as_str().ok());
        if let Ok(tags) = r.get_ref(4)?.as_str() {
            each_tag(tags, |k, v| count_tag(&mut counts, k, v))?;
        }
        hits.push((r.get(0)?, r.get(5)?));
    }
    drop(rows);
    let total = hits.len() as u64;
    let end = query.offset.saturating_add(query.limit);
    keep_best(&mut hits, end);
    let page = hits.get(query.offset.min(hits.len())..).unwrap_or(&[]);
    finish(conn, counts, page, true, total, end)
}

/// Keeps the `end` best `(id, bm25)` hits, in order: `ORDER BY bm25, id` (bm25 is
/// negative, more negative is better), with a partial selection instead of a sort.
pub(super) fn keep_best(hits: &mut Vec<(i64, f64)>, end: usize) {
    let order = |a: &(i64, f64), b: &(i64, f64)| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if end < hits.len() {
        hits.select_nth_unstable_by(end, order);
        hits.truncate(end);
    }
    hits.sort_unstable_by(order);
}

/// Runs a search on the in-memory index: ranked when there is a query, listed by
/// name when there is none.
pub async fn search(
    db: &Db,
    index: &std::sync::Arc<SearchIndex>,
    query: SearchQuery,
) -> Result<SearchResult, Error> {
    let fts = parse_q(&query)?;
    let index = index.clone();
    Ok(db
        .read(move |conn| run_indexed(conn, &index, &query, fts.as_deref()))
        .await?)
}

/// A search answered by the in-memory index, in the read transaction of `conn`
/// (the index is first brought up to that snapshot). Same results as [`run_ranked`] with a query
/// and [`run_reference`] without.
fn run_indexed(
    conn: &Connection,
    index: &SearchIndex,
    query: &SearchQuery,
    fts: Option<&str>,
) -> Result<SearchResult, meta::Error> {
    let end = query.offset.saturating_add(query.limit);
    let out = match fts {
        None => index.with_fresh(conn, |inner| inner.list(query, end))?,
        Some(fts) => {
            let Some(terms) = query_terms(conn, query.q.as_deref().unwrap_or_default())? else {
                return run_ranked(conn, query, fts);
            };
            index.with_fresh(conn, |inner| inner.search(&terms, query, end))?
        }
    };
    let page = out
        .hits
        .get(query.offset.min(out.hits.len())..)
        .unwrap_or(&[]);
    finish(conn, out.counts, page, fts.is_some(), out.total, end)
}

/// Parses `q` like [`search`] does.
fn parse_q(query: &SearchQuery) -> Result<Option<String>, Error> {
    match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => Ok(Some(fts_query(q).ok_or_else(|| {
            Error::invalid("q", "the query has no searchable words")
        })?)),
        None => Ok(None),
    }
}

/// Runs a search with the SQL implementation of ranked search (FTS5 `bm25()` over
/// every match, joined to `dataset_search`): the benchmark's baseline. Same results
/// as [`search`].
#[doc(hidden)]
pub async fn search_sql(db: &Db, query: SearchQuery) -> Result<SearchResult, Error> {
    let fts = parse_q(&query)?;
    Ok(db
        .read(move |conn| match fts.as_deref() {
            Some(f) => run_ranked(conn, &query, f),
            None => run_reference(conn, &query, None),
        })
        .await?)
}

/// Runs a search with the reference implementation (materialize, join `datasets`,
/// sort in SQL): the benchmark's and the tests' baseline. Same results as [`search`].
#[doc(hidden)]
pub async fn search_reference(db: &Db, query: SearchQuery) -> Result<SearchResult, Error> {
    let fts = parse_q(&query)?;
    Ok(db
        .read(move |conn| run_reference(conn, &query, fts.as_deref()))
        .await?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::{DatasetPatch, NewDataset, datasets};

    #[test]
    fn tag_encoding_round_trips() {
        let mut seen = Vec::new();
        each_tag("1,6,ahéllo2,0,k=1,3,qx\"y", |k, v| {
            seen.push((k.to_string(), v.to_string()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [("a", "héllo"), ("k=", ""), ("q", "x\"y")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        each_tag("", |_, _| panic!("no tags")).unwrap();
        assert!(each_tag("3,1,ab", |_, _| {}).is_err());
        assert!(each_tag("x", |_, _| {}).is_err());
    }

    fn same(a: &SearchResult, b: &SearchResult, what: &str) {
        assert_eq!(a.total, b.total, "{what}: total");
        let hits = |r: &SearchResult| {
            r.results
                .iter()
                .map(|h| (h.dataset.id, h.score))
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(a), hits(b), "{what}: page");
        assert_eq!(
            serde_json::to_value(&a.facets).unwrap(),
            serde_json::to_value(&b.facets).unwrap(),
            "{what}: facets"
        );
        assert_eq!(a.next_cursor, b.next_cursor, "{what}: cursor");
    }

    /// The one-pass search over `dataset_search` returns exactly what the reference
    /// implementation returns (page, scores, order, total, facets, cursor), for broad
    /// and narrow queries, prefixes, filters, visibility and paging, and keeps doing
    /// so after updates, zone moves and deletes (the triggers of migration 0007).
    #[tokio::test(flavor = "multi_thread")]
    async fn ranked_search_matches_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("tarn.db")).unwrap();
        db.bootstrap_zones("us-east-1".into()).await.unwrap();
        let words = ["alpha", "beta", "gamma", "delta", "alphabet", "alps"];
        let mut ids = Vec::new();
        for i in 0..300u64 {
            let w = |k: u64| words[((i * 7 + k * 13) % words.len() as u64) as usize];
            let mut tags = BTreeMap::new();
            tags.insert("domain".to_string(), w(1).to_string());
            if i % 3 == 0 {
                tags.insert("pii".to_string(), "yes".to_string());
            }
            if i % 10 == 0 {
                // Separators and non-ASCII survive the encoding.
                tags.insert("odd,key".to_string(), format!("v,{i}é=x"));
            }
            let mut metadata = serde_json::Map::new();
            metadata.insert("source".into(), w(2).into());
            let d = datasets::create(
                &db,
                NewDataset {
                    name: format!("{}_{}_{i}", w(3), w(4)),
                    bucket: ["raw", "transformed", "curated"][(i % 3) as usize].into(),
                    prefix: format!("ds/{i}/"),
                    description: format!("{} {} {}", w(5), w(6), w(i % 5)),
                    owner: Some(format!("owner{}", i % 4)),
                    tags,
                    metadata,
                    format: (i % 4 != 0).then(|| datasets::FORMATS[(i % 3) as usize].into()),
                },
                "test",
            )
            .await
            .unwrap();
            ids.push(d.id);
        }
        let member = |zones: Vec<Zone>, dataset_ids: Vec<i64>| crate::authz::Visibility {
            restricted: Some(crate::authz::VisibleSet {
                zones,
                dataset_ids,
                owner: "owner1".into(),
                ..Default::default()
            }),
        };
        let queries = || {
            let mut out = Vec::new();
            for q in [
                "alpha",
                "alp*",
                "a*",
                "beta gamma",
                "delta",
                "nothing",
                "owner1",
                "ALPHA_beta",
                "alpha_be*",
                "alpha alpha",
                "0é x",
                "odd_key v",
                "z*",
            ]
            .map(Some)
            .into_iter()
            // No query: everything that passes the filters, by name.
            .chain([None])
            {
                let q: Option<&str> = q;
                for (offset, limit) in [(0, 20), (0, 100), (15, 10), (290, 20)] {
                    out.push(SearchQuery {
                        q: q.map(Into::into),
                        offset,
                        limit,
                        ..Default::default()
                    });
                }
                out.push(SearchQuery {
                    q: q.map(Into::into),
                    zone: Some(Zone::Curated),
                    tags: vec![("pii".into(), "yes".into())],
                    limit: 20,
                    ..Default::default()
                });
                out.push(SearchQuery {
                    q: q.map(Into::into),
                    owner: Some("owner2".into()),
                    format: Some("csv".into()),
                    limit: 5,
                    ..Default::default()
                });
                out.push(SearchQuery {
                    q: q.map(Into::into),
                    limit: 20,
                    visibility: member(vec![Zone::Raw], vec![ids[1], ids[2]]),
                    ..Default::default()
                });
                out.push(SearchQuery {
                    q: q.map(Into::into),
                    limit: 20,
                    tags: vec![("domain".into(), "beta".into())],
                    visibility: member(vec![], vec![]),
                    ..Default::default()
                });
            }
            out
        };
        let index = std::sync::Arc::new(SearchIndex::new());
        let check = |stage: &'static str| {
            let (db, index) = (db.clone(), index.clone());
            async move {
                let mut nonempty = 0;
                for q in queries() {
                    let what = format!("{stage}: {q:?}");
                    let a = search(&db, &index, q.clone()).await.unwrap();
                    let b = search_reference(&db, q.clone()).await.unwrap();
                    let c = search_sql(&db, q).await.unwrap();
                    same(&a, &b, &what);
                    same(&c, &b, &what);
                    nonempty += usize::from(a.total > 0);
                }
                assert!(nonempty > 20, "{stage}: the queries match something");
            }
        };
        check("created").await;

        for (n, id) in ids.iter().enumerate().step_by(7) {
            let mut tags = BTreeMap::new();
            tags.insert("domain".to_string(), "alpha".to_string());
            tags.insert("moved".to_string(), n.to_string());
            datasets::update(
                &db,
                *id,
                DatasetPatch {
                    // Renames move datasets in the listing order.
                    name: (n % 2 == 0).then(|| format!("a_renamed_{}", 300 - n)),
                    owner: Some("owner1".into()),
                    tags: Some(tags),
                    format: Some(None),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        check("updated").await;

        db.write(|conn| {
            let bucket_id: i64 =
                conn.query_row("SELECT id FROM buckets WHERE name = 'raw'", [], |r| {
                    r.get(0)
                })?;
            crate::meta::zones::set_zone_in(conn, bucket_id, Zone::Curated)?;
            datasets::apply_zone_move(conn, bucket_id, Zone::Curated)?;
            Ok(())
        })
        .await
        .unwrap();
        check("zone moved").await;

        let gone: Vec<i64> = ids.iter().copied().step_by(5).collect();
        db.write(move |conn| {
            for id in gone {
                unindex(conn, id)?;
                conn.execute("DELETE FROM datasets WHERE id = ?1", [id])?;
            }
            Ok(())
        })
        .await
        .unwrap();
        check("deleted").await;

        // More changes than the log keeps between two searches: the index rebuilds.
        let moved = ids[3];
        db.write(move |conn| {
            conn.execute(
                "UPDATE datasets SET description = 'zulu alpha' WHERE id = ?1",
                [moved],
            )?;
            super::index(conn, moved)?;
            for _ in 0..10_001 {
                conn.execute("INSERT INTO search_log (dataset_id) VALUES (-1)", [])?;
            }
            Ok(())
        })
        .await
        .unwrap();
        check("log pruned").await;
        let zulu = search(
            &db,
            &index,
            SearchQuery {
                q: Some("zulu".into()),
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(zulu.results.len(), 1);
        assert_eq!(zulu.results[0].dataset.id, moved);
        let (rows, datasets): (i64, i64) = db
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT (SELECT COUNT(*) FROM dataset_search), (SELECT COUNT(*) FROM datasets)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(rows, datasets);
    }

    #[test]
    fn queries_are_phrases_and_cannot_inject_syntax() {
        assert_eq!(fts_query("sales").as_deref(), Some("\"sales\""));
        assert_eq!(
            fts_query("sales_daily eu*").as_deref(),
            Some("\"sales daily\" \"eu\"*")
        );
        assert_eq!(
            fts_query("a\" OR name:x").as_deref(),
            Some("\"a\" \"OR\" \"name x\"")
        );
        assert_eq!(fts_query(" -- ** "), None);
    }
}
