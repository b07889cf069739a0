//! The interface facts the program and the ports need, read in the calling
//! thread's network namespace: its index, and how many rx queues it has
//! (ethtool first, netlink's `IFLA_NUM_RX_QUEUES` for drivers without it).

use std::ffi::CString;
use std::io;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::XdpError;

/// The interface's index in the calling thread's network namespace.
pub(super) fn ifindex_of(ifname: &str) -> Result<u32, XdpError> {
    let no_such = || XdpError::NoSuchInterface {
        name: ifname.to_owned(),
    };
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ {
        return Err(no_such());
    }
    let c_name = CString::new(ifname).map_err(|_| no_such())?;
    // SAFETY: `c_name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => no_such(),
            _ => XdpError::Interface {
                ifname: ifname.to_owned(),
                what: "index",
                source: e,
            },
        });
    }
    Ok(index)
}

const IFNAMSIZ: usize = 16;

/// How many rx queues `ifname` has (the queue ids AF_XDP sockets can bind
/// to are `0..count`), in the calling thread's network namespace.
///
/// Asks the driver first (`ETHTOOL_GCHANNELS`: the channels in use, which
/// `ethtool -L` changes); drivers without that report the queues the device
/// was created with (netlink `IFLA_NUM_RX_QUEUES`). `/sys/class/net` is
/// not used: it shows the namespace sysfs was mounted in, not the caller's.
pub fn rx_queue_count(ifname: &str) -> Result<u32, XdpError> {
    let ifindex = ifindex_of(ifname)?;
    let err = |what, source: io::Error| match source.raw_os_error() {
        Some(libc::ENODEV) => XdpError::NoSuchInterface {
            name: ifname.to_owned(),
        },
        _ => XdpError::Interface {
            ifname: ifname.to_owned(),
            what,
            source,
        },
    };
    match ethtool_rx_channels(ifname) {
        Ok(n) if n > 0 => return Ok(n),
        // No get_channels in the driver (or it reports 0): ask netlink.
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
        Err(e) => return Err(err("rx channel count (ETHTOOL_GCHANNELS)", e)),
    }
    match netlink_num_rx_queues(ifindex) {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(err(
            "rx queue count (netlink)",
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the kernel reported 0 rx queues",
            ),
        )),
        Err(e) => Err(err("rx queue count (netlink IFLA_NUM_RX_QUEUES)", e)),
    }
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union, padded to the
/// union's full size (the kernel copies the whole struct in).
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Rx queues in use per the driver: combined channels (rx+tx pairs, what
/// most NICs have) plus rx-only channels (veth reports these).
fn ethtool_rx_channels(ifname: &str) -> io::Result<u32> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = IfreqData {
        name: [0; IFNAMSIZ],
        data: (&mut channels as *mut EthtoolChannels).cast(),
        _pad: [0; 16],
    };
    // ifindex_of checked the length (< IFNAMSIZ), so the NUL fits.
    for (dst, src) in req.name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a properly laid out ifreq whose data pointer points
    // to `channels`, a live ethtool_channels with cmd set; both outlive the
    // call, and the kernel writes only within them.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCETHTOOL,
            &mut req as *mut IfreqData,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(channels.rx_count.saturating_add(channels.combined_count))
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_NUM_RX_QUEUES: u16 = 32;
/// Attribute type bits that are flags (nested, byte order), not the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `IFLA_NUM_RX_QUEUES` of `ifindex` from an RTM_GETLINK request, answered
/// for the namespace the socket was created in (the caller's).
fn netlink_num_rx_queues(ifindex: u32) -> io::Result<u32> {
    let sock = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;

    let mut req = [0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
                                                     // ifinfomsg: family AF_UNSPEC (0), type 0, then the index.
    req[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].copy_from_slice(&ifindex.to_ne_bytes());

    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` and `kernel` are valid for the lengths passed and
    // outlive the call.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    // One link's attributes (with stats) are a few KiB; 32 KiB is ample,
    // and MSG_TRUNC tells us if not.
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "netlink reply truncated",
        ));
    }
    parse_num_rx_queues(&buf[..n])
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Finds IFLA_NUM_RX_QUEUES in an RTM_NEWLINK reply, or the errno of an
/// NLMSG_ERROR. Bounds-checked throughout: a malformed reply is an error.
fn parse_num_rx_queues(reply: &[u8]) -> io::Result<u32> {
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("netlink reply: {what}"));
    let msg_len = ne_u32(reply, 0).ok_or_else(|| bad("short header"))? as usize;
    let msg_type = ne_u16(reply, 4).ok_or_else(|| bad("short header"))?;
    let msg = reply
        .get(..msg_len)
        .ok_or_else(|| bad("length beyond data"))?;
    if msg_type == NLMSG_ERROR {
        let code = ne_u32(msg, NLMSG_HDRLEN).ok_or_else(|| bad("short error"))? as i32;
        return Err(io::Error::from_raw_os_error(code.saturating_neg()));
    }
    if msg_type != RTM_NEWLINK {
        return Err(bad("unexpected message type"));
    }
    let mut at = NLMSG_HDRLEN + IFINFOMSG_LEN;
    while at + 4 <= msg.len() {
        let attr_len = usize::from(ne_u16(msg, at).ok_or_else(|| bad("short attribute"))?);
        let attr_type = ne_u16(msg, at + 2).ok_or_else(|| bad("short attribute"))? & NLA_TYPE_MASK;
        if attr_len < 4 {
            return Err(bad("attribute length below its header"));
        }
        if attr_type == IFLA_NUM_RX_QUEUES {
            return ne_u32(msg, at + 4).ok_or_else(|| bad("short IFLA_NUM_RX_QUEUES"));
        }
        // Attributes are padded to 4 bytes.
        at += (attr_len + 3) & !3;
    }
    Err(bad("no IFLA_NUM_RX_QUEUES attribute"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_reply_parsing_is_bounds_checked() {
        // RTM_NEWLINK with one IFLA_MTU (4) and then IFLA_NUM_RX_QUEUES = 3.
        let mut m = vec![0u8; 32];
        m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&4u16.to_ne_bytes());
        m.extend_from_slice(&1500u32.to_ne_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&IFLA_NUM_RX_QUEUES.to_ne_bytes());
        m.extend_from_slice(&3u32.to_ne_bytes());
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(parse_num_rx_queues(&m).ok(), Some(3));
        // Every truncation is an error, never a panic.
        for cut in 0..m.len() {
            let mut t = m[..cut].to_vec();
            if t.len() >= 4 {
                t[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            assert!(parse_num_rx_queues(&t).is_err(), "cut at {cut}");
        }
        // NLMSG_ERROR carries a negative errno.
        let mut e = vec![0u8; 36];
        e[0..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(
            parse_num_rx_queues(&e).err().and_then(|e| e.raw_os_error()),
            Some(libc::ENODEV)
        );
    }
}
