//! Framing cases byte for byte, and properties over split points and arbitrary input.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

type Outcome = Result<Frame, FrameError>;

const START: &str = "MESSAGE sip:alice@sip.example SIP/2.0\r\n";

fn message(head: &str, body: &str) -> Frame {
    Frame::Message {
        head: head.as_bytes().to_vec(),
        body: body.as_bytes().to_vec(),
    }
}

/// Pushes each chunk and takes every frame it completes, as a transport would; stops at the first error.
fn run<'a>(
    limits: FrameLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Outcome>, Framer) {
    let mut framer = Framer::new(limits);
    let mut outcomes = Vec::new();
    for chunk in chunks {
        if let Err(error) = framer.push(chunk) {
            outcomes.push(Err(error));
            return (outcomes, framer);
        }
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => outcomes.push(Ok(frame)),
                Ok(None) => break,
                Err(error) => {
                    outcomes.push(Err(error));
                    return (outcomes, framer);
                }
            }
        }
    }
    (outcomes, framer)
}

fn run_whole(limits: FrameLimits, input: &[u8]) -> Vec<Outcome> {
    run(limits, [input]).0
}

fn run_bytewise(limits: FrameLimits, input: &[u8]) -> Vec<Outcome> {
    run(limits, input.chunks(1)).0
}

struct Case {
    name: &'static str,
    limits: FrameLimits,
    input: String,
    expected: Vec<Outcome>,
}

fn case(name: &'static str, input: impl Into<String>, expected: Vec<Outcome>) -> Case {
    Case {
        name,
        limits: FrameLimits::default(),
        input: input.into(),
        expected,
    }
}

fn limited(limits: FrameLimits, mut case: Case) -> Case {
    case.limits = limits;
    case
}

fn cases() -> Vec<Case> {
    let plain = format!("{START}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
    let ok = "SIP/2.0 200 OK\r\nCall-ID: a\r\nl: 0\r\n\r\n".to_owned();
    let exact_head = format!("{START}l: 0\r\n\r\n");
    vec![
        case(
            "full name",
            format!("{plain}hello"),
            vec![Ok(message(&plain, "hello"))],
        ),
        {
            let head = format!("{START}l: 5\r\n\r\n");
            case(
                "compact l",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}L:5\r\n\r\n");
            case(
                "compact L, no space",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}CONTENT-length: 5\r\n\r\n");
            case(
                "name in any case",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}Content-Length  : 5\r\n\r\n");
            case(
                "spaces before colon",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}l\t:\t5 \t\r\n\r\n");
            case(
                "tabs around the value",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}Content-Length:\r\n 5\r\n\r\n");
            case(
                "folded value",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        {
            let head = format!("{START}Subject: first\r\n\tsecond\r\nContent-Length: 5\r\n\r\n");
            case(
                "folded header before",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        case(
            "Content-Length inside a fold is part of the previous header",
            format!("{START}Subject: x\r\n Content-Length: 5\r\n\r\nhello"),
            vec![Err(FrameError::MissingContentLength)],
        ),
        case(
            "a fold after the start line is no header",
            format!("{START} l: 5\r\n\r\nhello"),
            vec![Err(FrameError::MissingContentLength)],
        ),
        case(
            "missing Content-Length",
            format!("{START}Content-Type: text/plain\r\n\r\nhello"),
            vec![Err(FrameError::MissingContentLength)],
        ),
        case(
            "no headers at all",
            format!("{START}\r\n"),
            vec![Err(FrameError::MissingContentLength)],
        ),
        case(
            "similar names are other headers",
            format!("{START}X-Content-Length: 5\r\nContent-Lengths: 5\r\nl5: 5\r\n\r\nhello"),
            vec![Err(FrameError::MissingContentLength)],
        ),
        {
            let head = format!("{START}Content-Length: 5\r\nl: 005\r\n\r\n");
            case(
                "duplicates agreeing",
                format!("{head}hello"),
                vec![Ok(message(&head, "hello"))],
            )
        },
        case(
            "duplicates conflicting",
            format!("{START}Content-Length: 5\r\nl: 6\r\n\r\nhello!"),
            vec![Err(FrameError::ConflictingContentLength {
                first: 5,
                second: 6,
            })],
        ),
        case(
            "non-numeric",
            format!("{START}l: abc\r\n\r\n"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "empty value",
            format!("{START}l:\r\n\r\n"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "negative",
            format!("{START}l: -1\r\n\r\n"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "plus sign",
            format!("{START}l: +5\r\n\r\nhello"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "two numbers",
            format!("{START}l: 5 5\r\n\r\nhello"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "digits split by a fold",
            format!("{START}l: 1\r\n 0\r\n\r\nhello"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "bare LF inside the value",
            format!("{START}l: 5\nX: y\r\n\r\nhello"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "past usize",
            format!("{START}l: 999999999999999999999999999999\r\n\r\n"),
            vec![Err(FrameError::InvalidContentLength)],
        ),
        case(
            "a response, empty body",
            ok.clone(),
            vec![Ok(message(&ok, ""))],
        ),
        {
            let head = format!("{START}l: 6\r\n\r\n");
            case(
                "blank line inside the body",
                format!("{head}a\r\n\r\nb"),
                vec![Ok(message(&head, "a\r\n\r\nb"))],
            )
        },
        case(
            "two pipelined messages",
            format!("{plain}hello{ok}"),
            vec![Ok(message(&plain, "hello")), Ok(message(&ok, ""))],
        ),
        case(
            "keep-alives between messages",
            format!("\r\n\r\n{plain}hello\r\n{ok}\r\n\r\n"),
            vec![
                Ok(Frame::KeepAlivePing),
                Ok(message(&plain, "hello")),
                Ok(Frame::KeepAlivePong),
                Ok(message(&ok, "")),
                Ok(Frame::KeepAlivePing),
            ],
        ),
        case(
            "three CRLFs: a ping, then a pong",
            format!("\r\n\r\n\r\n{ok}"),
            vec![
                Ok(Frame::KeepAlivePing),
                Ok(Frame::KeepAlivePong),
                Ok(message(&ok, "")),
            ],
        ),
        case(
            "a trailing lone CRLF waits for the next byte",
            format!("{ok}\r\n"),
            vec![Ok(message(&ok, ""))],
        ),
        case(
            "an unfinished body is no frame yet",
            format!("{plain}hell"),
            vec![],
        ),
        limited(
            FrameLimits {
                max_head: exact_head.len(),
                max_body: 0,
            },
            case(
                "head exactly at the limit",
                exact_head.clone(),
                vec![Ok(message(&exact_head, ""))],
            ),
        ),
        limited(
            FrameLimits {
                max_head: exact_head.len() - 1,
                max_body: 0,
            },
            case(
                "head one byte over the limit",
                exact_head.clone(),
                vec![Err(FrameError::HeadTooLarge {
                    limit: exact_head.len() - 1,
                })],
            ),
        ),
        limited(
            FrameLimits {
                max_head: 1024,
                max_body: 5,
            },
            case(
                "body exactly at the limit",
                format!("{plain}hello"),
                vec![Ok(message(&plain, "hello"))],
            ),
        ),
        limited(
            FrameLimits {
                max_head: 1024,
                max_body: 4,
            },
            case(
                "body over the limit",
                format!("{plain}hello"),
                vec![Err(FrameError::BodyTooLarge {
                    length: 5,
                    limit: 4,
                })],
            ),
        ),
        limited(
            FrameLimits {
                max_head: 3,
                max_body: 16,
            },
            case(
                "keep-alives are not heads, whatever max_head",
                "\r\n\r\n\r\nS",
                vec![Ok(Frame::KeepAlivePing), Ok(Frame::KeepAlivePong)],
            ),
        ),
    ]
}

#[test]
fn table() {
    for case in cases() {
        let input = case.input.as_bytes();
        assert_eq!(
            run_whole(case.limits, input),
            case.expected,
            "{} (one push)",
            case.name
        );
        assert_eq!(
            run_bytewise(case.limits, input),
            case.expected,
            "{} (byte by byte)",
            case.name
        );
    }
}

#[test]
fn default_limits() {
    let limits = FrameLimits::default();
    assert_eq!(limits.max_head, 64 * 1024);
    assert_eq!(limits.max_body, 1024 * 1024);
    assert_eq!(limits.max_buffered(), 2 * (64 + 1024) * 1024);
}

#[test]
fn body_limit_is_refused_before_the_body_arrives() {
    let head = format!("{START}Content-Length: 1048577\r\n\r\n");
    let mut framer = Framer::default();
    framer.push(head.as_bytes()).unwrap();

    let error = FrameError::BodyTooLarge {
        length: 1024 * 1024 + 1,
        limit: 1024 * 1024,
    };
    assert_eq!(framer.next_frame(), Err(error.clone()));
    assert_eq!(
        framer.buffered(),
        head.len(),
        "nothing past the head was asked for"
    );
    assert_eq!(framer.rejected_head(), Some(head.as_bytes()));
    assert_eq!(framer.push(b"body bytes"), Err(error.clone()));
    assert_eq!(
        framer.buffered(),
        head.len(),
        "the body is not buffered after the error"
    );
    assert_eq!(framer.next_frame(), Err(error));
}

#[test]
fn head_limit_is_refused_as_soon_as_it_is_reached() {
    let limits = FrameLimits {
        max_head: 32,
        max_body: 0,
    };
    let mut framer = Framer::new(limits);
    let line = [b'A'; 32];
    framer.push(&line[..31]).unwrap();
    assert_eq!(framer.next_frame(), Ok(None));
    framer.push(&line[31..]).unwrap();
    let error = FrameError::HeadTooLarge { limit: 32 };
    assert_eq!(framer.next_frame(), Err(error.clone()));
    assert_eq!(framer.rejected_head(), Some(&line[..]));
    assert_eq!(framer.push(b"\r\n\r\n"), Err(error));
}

#[test]
fn rejected_head_is_none_while_the_stream_is_fine() {
    let mut framer = Framer::default();
    framer
        .push(format!("{START}l: 0\r\n\r\n").as_bytes())
        .unwrap();
    assert!(matches!(
        framer.next_frame(),
        Ok(Some(Frame::Message { .. }))
    ));
    assert_eq!(framer.rejected_head(), None);
}

#[test]
fn a_full_buffer_refuses_without_failing_the_stream() {
    let limits = FrameLimits {
        max_head: 8,
        max_body: 8,
    };
    assert_eq!(limits.max_buffered(), 32);
    let mut framer = Framer::new(limits);
    let pings = b"\r\n\r\n".repeat(8);
    framer.push(&pings).unwrap();
    assert_eq!(
        framer.push(b"\r"),
        Err(FrameError::BufferFull { limit: 32 })
    );
    assert_eq!(framer.buffered(), 32, "the refused byte was not appended");

    let mut frames = Vec::new();
    while let Some(frame) = framer.next_frame().unwrap() {
        frames.push(frame);
    }
    assert_eq!(frames, vec![Frame::KeepAlivePing; 8]);
    framer.push(b"\r\n\r\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(Some(Frame::KeepAlivePing)));
}

#[test]
fn a_ping_split_across_reads_is_one_ping() {
    let mut framer = Framer::default();
    framer.push(b"\r\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(None));
    framer.push(b"\r").unwrap();
    assert_eq!(framer.next_frame(), Ok(None));
    framer.push(b"\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(Some(Frame::KeepAlivePing)));
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn a_lone_crlf_is_a_pong_once_the_next_byte_shows_it() {
    let mut framer = Framer::default();
    framer.push(b"\r\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(None));
    framer.push(b"S").unwrap();
    assert_eq!(framer.next_frame(), Ok(Some(Frame::KeepAlivePong)));
    assert_eq!(framer.next_frame(), Ok(None));
    assert_eq!(framer.buffered(), 1);
}

#[test]
fn an_expected_pong_is_reported_at_once() {
    let mut framer = Framer::default();
    framer.expect_pong();
    framer.push(b"\r\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(Some(Frame::KeepAlivePong)));
    // Only one pong answers one ping; the next lone CRLF waits again.
    framer.push(b"\r\n").unwrap();
    assert_eq!(framer.next_frame(), Ok(None));
}

#[test]
fn response_codes() {
    assert_eq!(
        FrameError::HeadTooLarge { limit: 1 }.response_code(),
        Some(513)
    );
    assert_eq!(
        FrameError::BodyTooLarge {
            length: 2,
            limit: 1
        }
        .response_code(),
        Some(413)
    );
    assert_eq!(FrameError::MissingContentLength.response_code(), Some(400));
    assert_eq!(FrameError::InvalidContentLength.response_code(), Some(400));
    let conflicting = FrameError::ConflictingContentLength {
        first: 1,
        second: 2,
    };
    assert_eq!(conflicting.response_code(), Some(400));
    assert_eq!(FrameError::BufferFull { limit: 1 }.response_code(), None);
}

#[test]
fn memory_of_a_large_body_is_given_back() {
    let body = vec![b'x'; 1024 * 1024];
    let mut framer = Framer::default();
    framer
        .push(format!("{START}l: {}\r\n\r\n", body.len()).as_bytes())
        .unwrap();
    framer.push(&body).unwrap();
    assert!(matches!(
        framer.next_frame(),
        Ok(Some(Frame::Message { .. }))
    ));
    framer.push(b"\r\n\r\n").unwrap();
    assert!(
        framer.buf.capacity() < 64 * 1024,
        "kept {} bytes",
        framer.buf.capacity()
    );
    assert_eq!(framer.next_frame(), Ok(Some(Frame::KeepAlivePing)));
}

// === Properties ===

#[derive(Debug, Clone)]
enum Item {
    Message { head: Vec<u8>, body: Vec<u8> },
    Ping,
    Pong,
}

impl Item {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Message { head, body } => [head.as_slice(), body].concat(),
            Self::Ping => b"\r\n\r\n".to_vec(),
            Self::Pong => b"\r\n".to_vec(),
        }
    }

    fn frame(&self) -> Frame {
        match self {
            Self::Message { head, body } => Frame::Message {
                head: head.clone(),
                body: body.clone(),
            },
            Self::Ping => Frame::KeepAlivePing,
            Self::Pong => Frame::KeepAlivePong,
        }
    }
}

fn frame_bytes(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Message { head, body } => [head.as_slice(), body].concat(),
        Frame::KeepAlivePing => b"\r\n\r\n".to_vec(),
        Frame::KeepAlivePong => b"\r\n".to_vec(),
    }
}

fn start_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("MESSAGE sip:alice@sip.example SIP/2.0".to_owned()),
        Just("SIP/2.0 202 Accepted".to_owned()),
        "[A-Z]{3,9} sips?:[a-z]{1,8}@[a-z]{1,8}\\.example SIP/2\\.0",
    ]
}

/// A header other than Content-Length, possibly folded.
fn other_header() -> impl Strategy<Value = String> {
    (
        "[A-Za-z][A-Za-z-]{0,15}".prop_filter("not Content-Length", |name| {
            !name.eq_ignore_ascii_case("l") && !name.eq_ignore_ascii_case("content-length")
        }),
        "[ -~]{0,30}",
        proptest::option::of(("[ \t]{1,3}", "[ -~]{0,20}")),
    )
        .prop_map(|(name, value, fold)| match fold {
            Some((indent, more)) => format!("{name}: {value}\r\n{indent}{more}\r\n"),
            None => format!("{name}: {value}\r\n"),
        })
}

/// A Content-Length header for `length`, in one of the spellings peers use.
fn content_length_header(length: usize) -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "Content-Length",
            "content-length",
            "CONTENT-LENGTH",
            "l",
            "L",
        ]),
        prop::sample::select(vec!["", " ", "\t", "  "]),
        prop::sample::select(vec!["", " ", "\t", "\r\n ", "\r\n\t"]),
        "0{0,2}",
    )
        .prop_map(move |(name, before, after, zeros)| {
            format!("{name}{before}:{after}{zeros}{length}\r\n")
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // Line breaks and blank lines, which must not end a body early.
        prop::collection::vec(prop::sample::select(vec![b'\r', b'\n', b'x']), 0..16),
    ]
}

fn sip_message() -> impl Strategy<Value = Item> {
    (
        start_line(),
        prop::collection::vec(other_header(), 0..5),
        body(),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_flat_map(|(start, headers, body, at, duplicate)| {
            let length = body.len();
            let lengths =
                prop::collection::vec(content_length_header(length), if duplicate { 2 } else { 1 });
            (Just((start, headers, body, at)), lengths)
        })
        .prop_map(|((start, mut headers, body, at), lengths)| {
            for header in lengths {
                let at = at.index(headers.len() + 1);
                headers.insert(at, header);
            }
            let head = format!("{start}\r\n{}\r\n", headers.concat()).into_bytes();
            Item::Message { head, body }
        })
}

fn stream() -> impl Strategy<Value = Vec<Item>> {
    let item = prop_oneof![3 => sip_message(), 1 => Just(Item::Ping), 1 => Just(Item::Pong)];
    prop::collection::vec(item, 0..8).prop_map(|items| {
        // A pong is only recognisable when a message follows it: before CRLFs it would merge into a ping,
        // and at the end it waits for the next byte.
        let mut kept = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let next_is_message = matches!(items.get(i + 1), Some(Item::Message { .. }));
            if !matches!(item, Item::Pong) || next_is_message {
                kept.push(item.clone());
            }
        }
        kept
    })
}

/// Cuts `input` at the given points.
fn split(input: &[u8], points: &[Index]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|point| point.index(input.len() + 1))
        .collect();
    cuts.push(0);
    cuts.push(input.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|pair| input[pair[0]..pair[1]].to_vec())
        .collect()
}

/// Arbitrary bytes, or bytes assembled from pieces of SIP so that the deeper paths are reached too.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"\r\n"[..],
        b"\r\n\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b":",
        b"Content-Length",
        b"l",
        b"0",
        b"7",
        b"12",
        b"99999999999999999999",
        b"INVITE sip:bob@sip.example SIP/2.0",
        b"X: y",
        b"\x00\xff",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat()),
        (
            stream(),
            prop::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 0..4)
        )
            .prop_map(|(items, edits)| mutate(
                items.iter().flat_map(Item::bytes).collect(),
                &edits
            )),
    ]
}

/// A valid stream with a few bytes overwritten, inserted or removed.
fn mutate(mut input: Vec<u8>, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, kind) in edits {
        let at = at.index(input.len() + 1);
        match kind {
            0 if at < input.len() => input[at] = *byte,
            1 => input.insert(at, *byte),
            _ if at < input.len() => {
                input.remove(at);
            }
            _ => {}
        }
    }
    input
}

proptest! {
    #[test]
    fn split_points_do_not_change_frames(
        items in stream(),
        points in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let input: Vec<u8> = items.iter().flat_map(Item::bytes).collect();
        let expected: Vec<Outcome> = items.iter().map(|item| Ok(item.frame())).collect();

        let (whole, framer) = run(FrameLimits::default(), [input.as_slice()]);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(framer.buffered(), 0);

        let chunks = split(&input, &points);
        let (pieces, framer) = run(FrameLimits::default(), chunks.iter().map(Vec::as_slice));
        prop_assert_eq!(&pieces, &expected);
        prop_assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_give_frames_or_an_error(
        input in noise(),
        points in prop::collection::vec(any::<Index>(), 0..16),
        max_head in 0usize..400,
        max_body in 0usize..80,
    ) {
        let limits = FrameLimits { max_head, max_body };
        let chunks = split(&input, &points);
        let (outcomes, framer) = run(limits, chunks.iter().map(Vec::as_slice));

        let frames: Vec<&Frame> = outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).collect();
        let failed = outcomes.last().is_some_and(Result::is_err);
        prop_assert_eq!(frames.len() + usize::from(failed), outcomes.len(), "an error ends the stream");
        for frame in &frames {
            if let Frame::Message { head, body } = frame {
                prop_assert!(head.ends_with(b"\r\n\r\n"));
                prop_assert!(head.len() <= max_head);
                prop_assert!(body.len() <= max_body);
            }
        }
        if !failed {
            // Nothing is lost or invented: the frames and what is still buffered are the input.
            let mut rebuilt: Vec<u8> = frames.iter().flat_map(|frame| frame_bytes(frame)).collect();
            rebuilt.extend_from_slice(framer.unframed());
            prop_assert_eq!(rebuilt, input.clone());
        }

        let buffer_full = |outcomes: &[Outcome]| {
            matches!(outcomes.last(), Some(Err(FrameError::BufferFull { .. })))
        };
        let whole = run_whole(limits, &input);
        if !buffer_full(&outcomes) && !buffer_full(&whole) {
            prop_assert_eq!(whole, outcomes, "split points changed the outcome");
        }
    }
}
