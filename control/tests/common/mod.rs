//! Shared helpers of the root-only control tests.
#![allow(dead_code)]

pub mod netns;
