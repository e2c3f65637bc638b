//! The MPPE fuzz targets' setting: a fixed start key, and the mode and strength read from
//! the input's control byte.

use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};

/// The start key of every direction: the keys are not what is fuzzed.
pub const START: StartKey = StartKey(*b"fuzz start key!!");

/// Mode = `control % 3`, strength = `control / 3 % 3`.
pub fn mode_and_strength(control: u8) -> (MppeMode, MppeStrength) {
    let mode = [
        MppeMode::Stateless,
        MppeMode::Stateful,
        MppeMode::StatefulLinux,
    ][usize::from(control % 3)];
    let strength = [
        MppeStrength::Bits40,
        MppeStrength::Bits56,
        MppeStrength::Bits128,
    ][usize::from(control / 3 % 3)];
    (mode, strength)
}
