//! Shared helpers of the root-only datapath tests (namespaces, veth, AF_PACKET, frames).
#![allow(dead_code)]

pub mod concentrator;
pub mod frames;
pub mod netns;
pub mod packet_socket;
