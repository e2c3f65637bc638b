//! The XDP steering program (ebpf/) from user space: load it, fill its maps, attach it, read
//! its verdict counters.
//!
//! Working order for AF_XDP (shared/notes/environment.md): load, create and bind the sockets,
//! insert them into the XSKMAP ([`Steering::set_socket`]), then attach. aya attaches through
//! a bpf_link, so the program is detached when the process exits.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfError};
use xpptp_ebpf_types::{
    CallEntry, ClientEntry, ClientKey, Counter, PROGRAM_NAME, Slot, call_flags, map_name,
};

/// The compiled XDP program (bpfel ELF), built by build.rs.
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xpptp-ebpf"));

/// What went wrong loading, attaching or talking to the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    #[error("loading the XDP object failed (needs root with CAP_BPF, or BPF is unavailable)")]
    Load(#[source] EbpfError),
    #[error("the XDP object has no {what} named {name}")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("XDP program {PROGRAM_NAME}: {action} failed")]
    Program {
        action: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("BPF map {map}: {action} failed")]
    Map {
        map: &'static str,
        action: &'static str,
        #[source]
        source: MapError,
    },
}

/// The loaded (and perhaps attached) program with typed handles on its maps.
pub struct Steering {
    ebpf: Ebpf,
    calls: Array<MapData, CallEntry>,
    clients: HashMap<MapData, ClientKey, ClientEntry>,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, Counter>,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // aya's typed maps are not Debug; the program and map names say what this is.
        f.debug_struct("Steering")
            .field("program", &PROGRAM_NAME)
            .finish_non_exhaustive()
    }
}

fn map_error(map: &'static str, action: &'static str) -> impl FnOnce(MapError) -> SteeringError {
    move |source| SteeringError::Map {
        map,
        action,
        source,
    }
}

fn program_error(action: &'static str) -> impl FnOnce(ProgramError) -> SteeringError {
    move |source| SteeringError::Program { action, source }
}

impl Steering {
    /// Loads the embedded object into the kernel (maps created, program verified), not yet
    /// attached anywhere.
    pub fn load() -> Result<Steering, SteeringError> {
        let mut ebpf = Ebpf::load(XDP_OBJECT).map_err(SteeringError::Load)?;
        let mut take = |name: &'static str| {
            ebpf.take_map(name)
                .ok_or(SteeringError::Missing { what: "map", name })
        };
        let calls =
            Array::try_from(take(map_name::CALLS)?).map_err(map_error(map_name::CALLS, "open"))?;
        let clients = HashMap::try_from(take(map_name::CLIENTS)?)
            .map_err(map_error(map_name::CLIENTS, "open"))?;
        let xsks =
            XskMap::try_from(take(map_name::XSKS)?).map_err(map_error(map_name::XSKS, "open"))?;
        let counters = PerCpuArray::try_from(take(map_name::COUNTERS)?)
            .map_err(map_error(map_name::COUNTERS, "open"))?;
        let mut steering = Steering {
            ebpf,
            calls,
            clients,
            xsks,
            counters,
        };
        steering
            .program_mut()?
            .load()
            .map_err(program_error("load"))?;
        Ok(steering)
    }

    /// The program itself, for attaching or (in tests) BPF_PROG_TEST_RUN.
    pub fn program_mut(&mut self) -> Result<&mut Xdp, SteeringError> {
        let missing = SteeringError::Missing {
            what: "XDP program",
            name: PROGRAM_NAME,
        };
        let program = self.ebpf.program_mut(PROGRAM_NAME).ok_or(missing)?;
        program.try_into().map_err(program_error("open"))
    }

    /// Attaches to `interface` in `mode`; detached again when `self` is dropped or the process
    /// exits.
    pub fn attach(&mut self, interface: &str, mode: XdpMode) -> Result<(), SteeringError> {
        self.program_mut()?
            .attach(interface, mode)
            .map_err(program_error("attach"))?;
        Ok(())
    }

    /// Marks call `call_id` established from `peer`: its MPPE data, pure acks and (with
    /// `allow_plain_ip`) plain IP go to the AF_XDP sockets from now on.
    pub fn establish_call(
        &mut self,
        call_id: u16,
        peer: Ipv4Addr,
        allow_plain_ip: bool,
    ) -> Result<(), SteeringError> {
        let extra = if allow_plain_ip {
            call_flags::ALLOW_PLAIN_IP
        } else {
            0
        };
        let entry = CallEntry::established(peer.octets(), extra);
        self.calls
            .set(u32::from(call_id), entry, 0)
            .map_err(map_error(map_name::CALLS, "set"))
    }

    /// Forgets call `call_id`: its GRE goes to the kernel again.
    pub fn remove_call(&mut self, call_id: u16) -> Result<(), SteeringError> {
        self.calls
            .set(u32::from(call_id), CallEntry::default(), 0)
            .map_err(map_error(map_name::CALLS, "clear"))
    }

    /// Steers IPv4 to `tunnel_addr` to the AF_XDP sockets, for call `call_id`.
    pub fn add_client(&mut self, tunnel_addr: Ipv4Addr, call_id: u16) -> Result<(), SteeringError> {
        let key = ClientKey {
            addr: tunnel_addr.octets(),
        };
        let entry = ClientEntry {
            call_id,
            ..ClientEntry::default()
        };
        self.clients
            .insert(key, entry, 0)
            .map_err(map_error(map_name::CLIENTS, "insert"))
    }

    /// Stops steering IPv4 to `tunnel_addr`.
    pub fn remove_client(&mut self, tunnel_addr: Ipv4Addr) -> Result<(), SteeringError> {
        let key = ClientKey {
            addr: tunnel_addr.octets(),
        };
        self.clients
            .remove(&key)
            .map_err(map_error(map_name::CLIENTS, "remove"))
    }

    /// Puts the AF_XDP socket bound to receive queue `queue` into the XSKMAP (the map keeps
    /// its own reference to the socket).
    pub fn set_socket(&mut self, queue: u32, socket: impl AsFd) -> Result<(), SteeringError> {
        self.xsks
            .set(queue, socket.as_fd(), 0)
            .map_err(map_error(map_name::XSKS, "set"))
    }

    /// Removes the socket of receive queue `queue` from the XSKMAP.
    pub fn unset_socket(&mut self, queue: u32) -> Result<(), SteeringError> {
        self.xsks
            .unset(queue)
            .map_err(map_error(map_name::XSKS, "unset"))
    }

    /// One verdict slot summed over every CPU.
    pub fn counter(&self, slot: Slot) -> Result<Counter, SteeringError> {
        let per_cpu = self
            .counters
            .get(&slot.index(), 0)
            .map_err(map_error(map_name::COUNTERS, "read"))?;
        Ok(Counter::sum(per_cpu.iter()))
    }

    /// Every verdict slot summed over every CPU, in slot order.
    pub fn counters(&self) -> Result<Vec<(Slot, Counter)>, SteeringError> {
        Slot::ALL
            .iter()
            .map(|&slot| Ok((slot, self.counter(slot)?)))
            .collect()
    }
}
