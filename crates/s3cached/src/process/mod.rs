//! The running process: [`server`] builds origin, tiers, engine and doors from a
//! [`crate::model::config::ServeConfig`] and accepts connections; [`admin`] serves the admin
//! listener; [`events`] keeps the cache fresh from S3 event notifications; [`warm`] loads a
//! prefix into the cache.

pub mod admin;
pub mod events;
pub mod server;
pub mod warm;
