//! Plain data and codecs: what a request asks, what an entry holds, how keys and blocks are
//! named, and the library's configuration. Nothing here does I/O or knows a tier, the origin
//! or the engine; every layer above builds on these types.

pub mod block;
pub mod conditional;
pub mod config;
pub mod entry;
pub mod form_decode;
pub mod hit_headers;
pub mod identities;
pub mod key;
pub mod operation;
pub mod range;
pub mod read_request;
pub mod size;
