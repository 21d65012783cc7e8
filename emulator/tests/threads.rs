//! The loopback servers leave no thread behind: after a fault proxy (and the server behind it)
//! is dropped with a client's connection still open, the process has the threads it had
//! before. Alone in its own test binary, so no other test's threads are counted.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used)]

use emulator::loopback::{Message, Reading, Server};
use emulator::proxy::{FaultProxy, Faults};
use std::io::{BufReader, Write};
use std::net::TcpStream;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn dropped_servers_end_every_thread_they_started() {
    let before = threads();
    let upstream = Server::start(|stream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        while let Ok(Some(_)) = Message::read(&mut reader, Reading::Request) {
            let answer = Message::response("200 OK", &[], b"<ok/>");
            if answer.write_to(&mut writer).is_err() {
                return;
            }
        }
    })
    .unwrap();
    let proxy = FaultProxy::start(upstream.port(), Faults::default()).unwrap();
    let address = proxy.endpoint().trim_start_matches("http://").to_owned();
    let mut client = TcpStream::connect(&address).unwrap();
    let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\nAction=DescribeTags";
    client.write_all(request).unwrap();
    let answer = Message::read(
        &mut BufReader::new(client.try_clone().unwrap()),
        Reading::ResponseTo("POST"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (answer.status(), answer.body.as_slice()),
        (Some(200), &b"<ok/>"[..])
    );
    assert!(
        threads() > before,
        "the servers run threads while they serve"
    );
    // The client keeps its connection open; dropping the proxy must still end its thread.
    drop(proxy);
    drop(upstream);
    assert_eq!(threads(), before, "a server left a thread behind");
    drop(client);
}
