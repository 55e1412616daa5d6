//! Authentication primitives: password hashing, access tokens and opaque tokens.

pub mod jwt;
pub mod keys;
pub mod opaque;
pub mod password;
