//! Deny and allow lists: ids, IP addresses and CIDR ranges that are always
//! denied or always admitted, decided before any store is asked (no round
//! trip, nothing counted).

mod address;
mod list;

pub use list::{AccessList, Listed};
