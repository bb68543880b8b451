//! The full-text index's own tokenizer, called directly.
//!
//! The in-memory search index ([`super::index`]) must split text into exactly the
//! tokens FTS5 stores for `dataset_fts` (`unicode61 remove_diacritics 2`: case
//! folding, diacritics removed, separators by Unicode category). Rather than
//! re-implementing those rules, this module asks the connection's FTS5 module for
//! the tokenizer itself through the documented `fts5_api` C interface, so the two
//! can never disagree.

use std::ffi::{CStr, c_char, c_int, c_void};

use rusqlite::Connection;
use rusqlite::ffi;

use crate::meta;

/// The tokenizer and arguments of `dataset_fts` (migration 0003).
const TOKENIZER: &CStr = c"unicode61";
const ARGS: [&CStr; 2] = [c"remove_diacritics", c"2"];

/// A live instance of the `dataset_fts` tokenizer, borrowed from one connection.
pub struct Tokenizer<'c> {
    api: ffi::fts5_tokenizer,
    tok: *mut ffi::Fts5Tokenizer,
    _conn: std::marker::PhantomData<&'c Connection>,
}

fn error(what: &str, rc: c_int) -> meta::Error {
    meta::Error::Corrupt(format!("fts5 tokenizer: {what} failed (rc {rc})"))
}

impl<'c> Tokenizer<'c> {
    /// Creates the tokenizer through `conn`'s FTS5 module.
    pub fn new(conn: &'c Connection) -> Result<Tokenizer<'c>, meta::Error> {
        let api = fts5_api(conn)?;
        let mut user: *mut c_void = std::ptr::null_mut();
        // SAFETY: `api` points to the connection's live fts5_api (valid while `conn`
        // is open, which the lifetime 'c guarantees); the out-pointers are valid.
        let mut tokenizer: ffi::fts5_tokenizer = unsafe { std::mem::zeroed() };
        let find = unsafe { (*api).xFindTokenizer }.ok_or_else(|| error("xFindTokenizer", 0))?;
        let rc = unsafe { find(api, TOKENIZER.as_ptr(), &mut user, &mut tokenizer) };
        if rc != ffi::SQLITE_OK {
            return Err(error("xFindTokenizer", rc));
        }
        let create = tokenizer.xCreate.ok_or_else(|| error("xCreate", 0))?;
        let mut args: Vec<*const c_char> = ARGS.iter().map(|a| a.as_ptr()).collect();
        let mut tok: *mut ffi::Fts5Tokenizer = std::ptr::null_mut();
        // SAFETY: `args` outlives the call and holds NUL-terminated strings.
        let rc = unsafe { create(user, args.as_mut_ptr(), args.len() as c_int, &mut tok) };
        if rc != ffi::SQLITE_OK || tok.is_null() {
            return Err(error("xCreate", rc));
        }
        Ok(Tokenizer {
            api: tokenizer,
            tok,
            _conn: std::marker::PhantomData,
        })
    }

    /// Calls `f` with every token of `text`, in order.
    pub fn tokens(&mut self, text: &str, mut f: impl FnMut(&str)) -> Result<(), meta::Error> {
        if text.is_empty() {
            return Ok(());
        }
        let len = c_int::try_from(text.len()).map_err(|_| error("text length", 0))?;
        let tokenize = self.api.xTokenize.ok_or_else(|| error("xTokenize", 0))?;
        let mut sink: &mut dyn FnMut(&str) = &mut f;
        // SAFETY: `self.tok` is live; `text` outlives the call; the callback only
        // reads the `(ptr, len)` token the tokenizer hands it, during the call.
        let rc = unsafe {
            tokenize(
                self.tok,
                (&mut sink) as *mut &mut dyn FnMut(&str) as *mut c_void,
                ffi::FTS5_TOKENIZE_DOCUMENT,
                text.as_ptr().cast(),
                len,
                Some(on_token),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error("xTokenize", rc));
        }
        Ok(())
    }
}

impl Drop for Tokenizer<'_> {
    fn drop(&mut self) {
        if let Some(delete) = self.api.xDelete {
            // SAFETY: `self.tok` was created by this tokenizer and is deleted once.
            unsafe { delete(self.tok) };
        }
    }
}

unsafe extern "C" fn on_token(
    ctx: *mut c_void,
    _flags: c_int,
    token: *const c_char,
    len: c_int,
    _start: c_int,
    _end: c_int,
) -> c_int {
    // SAFETY: `ctx` is the `&mut &mut dyn FnMut(&str)` passed by `Tokenizer::tokens`,
    // alive for the whole xTokenize call; `token` points to `len` bytes.
    let sink = unsafe { &mut *(ctx as *mut &mut dyn FnMut(&str)) };
    let Ok(len) = usize::try_from(len) else {
        return ffi::SQLITE_ERROR;
    };
    let bytes = unsafe { std::slice::from_raw_parts(token.cast::<u8>(), len) };
    // unicode61 emits valid UTF-8 for valid UTF-8 input.
    match std::str::from_utf8(bytes) {
        Ok(t) => {
            sink(t);
            ffi::SQLITE_OK
        }
        Err(_) => ffi::SQLITE_ERROR,
    }
}

/// The connection's `fts5_api` (the documented `SELECT fts5(?1)` handshake).
fn fts5_api(conn: &Connection) -> Result<*mut ffi::fts5_api, meta::Error> {
    let mut api: *mut ffi::fts5_api = std::ptr::null_mut();
    // SAFETY: the handle is used only for this statement on this thread; the pointer
    // bound is `&mut api`, alive until the statement is finalized below.
    unsafe {
        let db = conn.handle();
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let rc = ffi::sqlite3_prepare_v2(
            db,
            c"SELECT fts5(?1)".as_ptr(),
            -1,
            &mut stmt,
            std::ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK {
            return Err(error("prepare fts5()", rc));
        }
        let rc = ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&mut api as *mut *mut ffi::fts5_api).cast(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        if rc == ffi::SQLITE_OK {
            ffi::sqlite3_step(stmt);
        }
        ffi::sqlite3_finalize(stmt);
    }
    if api.is_null() {
        return Err(error("fts5_api", 0));
    }
    Ok(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(conn: &Connection, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        Tokenizer::new(conn)
            .unwrap()
            .tokens(text, |t| out.push(t.to_string()))
            .unwrap();
        out
    }

    /// The tokens are the index's: folded, diacritics removed, split on separators;
    /// and FTS5 finds a row by each of them.
    #[test]
    fn tokens_are_the_full_text_index_tokens() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(
            tokens(&conn, "Sales_DAILY Éclair naïve-ŒUVRE 42x"),
            ["sales", "daily", "eclair", "naive", "œuvre", "42x"]
        );
        assert!(tokens(&conn, "").is_empty());
        assert!(tokens(&conn, " -- ").is_empty());
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(a, tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO t (rowid, a) VALUES (1, 'Sales_DAILY Éclair naïve-ŒUVRE 42x');",
        )
        .unwrap();
        for t in tokens(&conn, "Sales_DAILY Éclair naïve-ŒUVRE 42x") {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM t WHERE t MATCH ?1",
                    [format!("\"{t}\"")],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{t}");
        }
    }
}
