//! Which shard owns a client.
//!
//! The data plane runs N shards. A DHCP client is owned by exactly one shard,
//! chosen from its hardware address by [`shard_of`]. The same function is
//! compiled into a classic BPF program ([`cbpf_program`]) that the kernel runs
//! on every datagram of the SO_REUSEPORT group, so relayed unicast reaches
//! the owning shard directly; broadcasts reach every shard and the others
//! drop them. Keep the two in step: a unit test checks they agree.

/// Multiplier of the hash (Knuth's multiplicative constant, 2^32 / φ).
pub const HASH_MULTIPLIER: u32 = 0x9E37_79B1;

/// Offset of `chaddr` in a BOOTP/DHCP message.
pub const CHADDR_OFFSET: u32 = 28;

/// The shard (0..`shards`) that owns the client with hardware address `mac`.
///
/// Uses the last four octets (the NIC-specific part; the OUI is usually the
/// same across a fleet), multiplies, keeps the well-mixed high half, and
/// reduces modulo the shard count. `shards == 0` is treated as 1.
pub fn shard_of(mac: &[u8; 6], shards: u32) -> u32 {
    let word = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    (word.wrapping_mul(HASH_MULTIPLIER) >> 16) % shards.max(1)
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_ALU_MUL_K: u16 = 0x04 | 0x20; // BPF_ALU | BPF_MUL | BPF_K
const BPF_ALU_RSH_K: u16 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const BPF_ALU_MOD_K: u16 = 0x04 | 0x90; // BPF_ALU | BPF_MOD | BPF_K
const BPF_RET_A: u16 = 0x06 | 0x10; // BPF_RET | BPF_A

/// The reuseport steering program for `shards` sockets: it computes
/// [`shard_of`] on the `chaddr` of the UDP payload (the program sees the
/// payload at offset 0) and returns it as the socket index. A datagram too
/// short to hold `chaddr` makes the load fail, and the kernel then falls back
/// to its default hash.
pub fn cbpf_program(shards: u32) -> [BpfInsn; 5] {
    let insn = |code, k| BpfInsn {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    [
        insn(BPF_LD_W_ABS, CHADDR_OFFSET + 2),
        insn(BPF_ALU_MUL_K, HASH_MULTIPLIER),
        insn(BPF_ALU_RSH_K, 16),
        insn(BPF_ALU_MOD_K, shards.max(1)),
        insn(BPF_RET_A, 0),
    ]
}

/// Runs a program made by [`cbpf_program`] on a payload, as the kernel does.
/// Returns `None` where the kernel's load would fail.
pub fn run_cbpf(program: &[BpfInsn], payload: &[u8]) -> Option<u32> {
    let mut acc: u32 = 0;
    for insn in program {
        match insn.code {
            BPF_LD_W_ABS => {
                let at = usize::try_from(insn.k).ok()?;
                let bytes = payload.get(at..at.checked_add(4)?)?;
                acc = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            BPF_ALU_MUL_K => acc = acc.wrapping_mul(insn.k),
            BPF_ALU_RSH_K => acc = acc.checked_shr(insn.k).unwrap_or(0),
            BPF_ALU_MOD_K => acc = acc.checked_rem(insn.k)?,
            BPF_RET_A => return Some(acc),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_agrees_with_function() {
        for shards in 1..=16 {
            let program = cbpf_program(shards);
            for n in 0u32..2000 {
                let mac = [
                    0x52,
                    0x54,
                    (n >> 16) as u8,
                    (n >> 8) as u8,
                    n as u8,
                    (n * 7) as u8,
                ];
                let mut payload = vec![0u8; 300];
                payload[28..34].copy_from_slice(&mac);
                assert_eq!(run_cbpf(&program, &payload), Some(shard_of(&mac, shards)));
            }
        }
    }

    #[test]
    fn short_payload_fails_the_load() {
        assert_eq!(run_cbpf(&cbpf_program(4), &[0u8; 33]), None);
    }

    #[test]
    fn sequential_macs_spread_evenly() {
        let shards = 4;
        let mut counts = [0u32; 4];
        for n in 0u32..4000 {
            let mac = [0x52, 0x54, 0x00, (n >> 16) as u8, (n >> 8) as u8, n as u8];
            counts[shard_of(&mac, shards) as usize] += 1;
        }
        for c in counts {
            assert!((900..=1100).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn zero_shards_is_one() {
        assert_eq!(shard_of(&[1, 2, 3, 4, 5, 6], 0), 0);
    }
}
