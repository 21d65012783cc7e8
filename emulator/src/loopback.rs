//! The one loopback HTTP/1.1 layer of the test servers (the fault proxy, xtask's local Lambda
//! runtime): reading and writing messages (by length or in chunks) and a server whose accept
//! and connection threads all end when it is dropped.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One HTTP/1.1 request or response, its body decoded (chunks joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `POST /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start_line: String,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Which message is read: a request, or the response to a request with this method.
#[derive(Debug, Clone, Copy)]
pub enum Reading<'a> {
    Request,
    ResponseTo(&'a str),
}

impl Message {
    /// Reads one message; `None` when the peer closed the connection before one began.
    pub fn read(reader: &mut impl BufRead, reading: Reading<'_>) -> io::Result<Option<Self>> {
        let mut start_line = String::new();
        if reader.read_line(&mut start_line)? == 0 {
            return Ok(None);
        }
        let start_line = start_line.trim_end().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed inside the headers",
                ));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mut message = Message {
            start_line,
            headers,
            body: Vec::new(),
        };
        let bodiless = match reading {
            Reading::Request => false,
            Reading::ResponseTo(method) => {
                method.eq_ignore_ascii_case("HEAD")
                    || matches!(message.status(), Some(100..=199 | 204 | 304))
            }
        };
        if bodiless {
            return Ok(Some(message));
        }
        if message
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            message.body = read_chunks(reader)?;
        } else if let Some(length) = message.header("content-length") {
            let length = length
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad Content-Length"))?;
            message.body = vec![0; length];
            reader.read_exact(&mut message.body)?;
        } else if let Reading::ResponseTo(_) = reading {
            // A response without a length ends when the connection does.
            reader.read_to_end(&mut message.body)?;
        }
        Ok(Some(message))
    }

    /// A response with `status` (`200 OK`), extra headers and a body.
    pub fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Self {
        Message {
            start_line: format!("HTTP/1.1 {status}"),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every header of that name.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// A request's method.
    pub fn method(&self) -> &str {
        self.start_line
            .split_whitespace()
            .next()
            .unwrap_or_default()
    }

    /// A request's path.
    pub fn path(&self) -> &str {
        self.start_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        let mut parts = self.start_line.split_whitespace();
        parts
            .next()
            .filter(|v| v.starts_with("HTTP/"))
            .and(parts.next())
            .and_then(|code| code.parse().ok())
    }

    /// The message as sent on the wire: the body by length (never chunked).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("{}\r\n", self.start_line);
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
            {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Writes [`Message::to_bytes`] and flushes.
    pub fn write_to(&self, stream: &mut impl Write) -> io::Result<()> {
        stream.write_all(&self.to_bytes())?;
        stream.flush()
    }

    /// Header names in lowercase with their values (the first of each).
    pub fn header_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        for (k, v) in &self.headers {
            map.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.clone());
        }
        map
    }
}

fn read_chunks(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad chunk size"))?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// The connections a server is serving: a handle to close each, and its thread.
#[derive(Default)]
struct Connections {
    open: Vec<(TcpStream, JoinHandle<()>)>,
}

/// A server on a free loopback port; each connection is handled on its own thread. Dropping
/// it stops accepting, closes every open connection and waits for every thread it started.
pub struct Server {
    port: u16,
    stopped: Arc<AtomicBool>,
    connections: Arc<Mutex<Connections>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving; `handle` gets each connection and returns when it is done with it.
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Connections::default()));
        let handle = Arc::new(handle);
        let accept = {
            let (stopped, connections) = (Arc::clone(&stopped), Arc::clone(&connections));
            std::thread::spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let Ok(closer) = stream.try_clone() else {
                                continue;
                            };
                            let handle = Arc::clone(&handle);
                            let thread = std::thread::spawn(move || handle(stream));
                            if let Ok(mut open) = connections.lock() {
                                // Forget the threads that already finished.
                                open.open.retain(|(_, t)| !t.is_finished());
                                open.open.push((closer, thread));
                            }
                        }
                        Err(_) => std::thread::sleep(ACCEPT_POLL),
                    }
                }
            })
        };
        Ok(Server {
            port,
            stopped,
            connections,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let open = self
            .connections
            .lock()
            .map(|mut c| std::mem::take(&mut c.open))
            .unwrap_or_default();
        for (stream, thread) in open {
            // A handler blocked reading its connection gets end-of-file and returns.
            let _ = stream.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn read(bytes: &[u8], reading: Reading<'_>) -> Option<Message> {
        Message::read(&mut BufReader::new(bytes), reading).unwrap()
    }

    #[test]
    fn a_request_by_length_and_one_in_chunks_read_alike() {
        let by_length = read(
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            Reading::Request,
        )
        .unwrap();
        let chunked = read(
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            Reading::Request,
        )
        .unwrap();
        assert_eq!((by_length.method(), by_length.path()), ("POST", "/x"));
        assert_eq!(by_length.body, b"hello");
        assert_eq!(chunked.body, b"hello");
        assert_eq!(by_length.header("HOST"), Some("h"));
        assert!(read(b"", Reading::Request).is_none(), "a closed connection");
    }

    #[test]
    fn responses_end_by_length_by_eof_or_not_at_all_for_head() {
        let by_eof = read(
            b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nall of it",
            Reading::ResponseTo("GET"),
        )
        .unwrap();
        assert_eq!(
            (by_eof.status(), by_eof.body.as_slice()),
            (Some(200), &b"all of it"[..])
        );
        let head = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            Reading::ResponseTo("HEAD"),
        )
        .unwrap();
        assert!(head.body.is_empty());
        let truncated = Message::read(
            &mut BufReader::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..]),
            Reading::ResponseTo("GET"),
        );
        assert!(truncated.is_err());
    }

    #[test]
    fn a_message_is_written_by_length_whatever_it_came_as() {
        let chunked = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            Reading::ResponseTo("POST"),
        )
        .unwrap();
        assert_eq!(
            chunked.to_bytes(),
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok".to_vec()
        );
        let again = read(&chunked.to_bytes(), Reading::ResponseTo("POST")).unwrap();
        assert_eq!(again.body, b"ok");
    }

    #[test]
    fn dropping_the_server_closes_a_connection_its_handler_is_blocked_on() {
        let server = Server::start(|stream| {
            // Blocks until the peer or the server closes the connection.
            let _ = Message::read(&mut BufReader::new(stream), Reading::Request);
        })
        .unwrap();
        let mut client = TcpStream::connect(server.address()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Returns only once the accept thread and the blocked handler have ended.
        drop(server);
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            client.read_to_end(&mut rest).unwrap(),
            0,
            "closed by the server"
        );
    }
}
