//! A response (or request) body that reports its frames as they pass, and
//! its end: what the span and metric layers need, since a gRPC call's
//! status may come in the trailers after the last message, and a stream's
//! end is the call's end.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Its last frame was read.
    Finished,
    /// Reading it failed (the connection broke).
    Failed,
    /// It was dropped before its end: the peer went away.
    Dropped,
}

/// What a `Watched` body tells as its frames pass.
pub trait BodyObserver {
    /// A data frame passed.
    fn data(&mut self, _data: &[u8]) {}

    /// The trailers passed.
    fn trailers(&mut self, _trailers: &HeaderMap) {}

    /// The body ended; called once, last.
    fn end(self, how: BodyEnd);
}

/// No observer: the body passes unobserved.
impl<O: BodyObserver> BodyObserver for Option<O> {
    fn data(&mut self, data: &[u8]) {
        if let Some(observer) = self {
            observer.data(data);
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(observer) = self {
            observer.trailers(trailers);
        }
    }

    fn end(self, how: BodyEnd) {
        if let Some(observer) = self {
            observer.end(how);
        }
    }
}

/// Two observers of one body, in order.
impl<A: BodyObserver, B: BodyObserver> BodyObserver for (A, B) {
    fn data(&mut self, data: &[u8]) {
        self.0.data(data);
        self.1.data(data);
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        self.0.trailers(trailers);
        self.1.trailers(trailers);
    }

    fn end(self, how: BodyEnd) {
        self.0.end(how);
        self.1.end(how);
    }
}

/// An observer until its request ends; told `Dropped` if it never does:
/// held across the handler too, since a call whose client left (or whose
/// deadline passed) is dropped before it has a response.
pub struct Ending<O: BodyObserver>(Option<O>);

impl<O: BodyObserver> Ending<O> {
    pub fn new(observer: O) -> Self {
        Self(Some(observer))
    }

    /// The observer, to go on with the response's body.
    pub fn take(mut self) -> O {
        self.0.take().expect("an Ending is taken once")
    }

    fn end(&mut self, how: BodyEnd) {
        if let Some(observer) = self.0.take() {
            observer.end(how);
        }
    }
}

impl<O: BodyObserver> Drop for Ending<O> {
    fn drop(&mut self) {
        self.end(BodyEnd::Dropped);
    }
}

pin_project! {
    /// `inner`, reported to an observer frame by frame.
    pub struct Watched<B, O: BodyObserver> {
        #[pin]
        inner: B,
        observer: Ending<O>,
    }
}

impl<B, O: BodyObserver> Watched<B, O> {
    pub fn new(inner: B, observer: O) -> Self {
        Self {
            inner,
            observer: Ending(Some(observer)),
        }
    }
}

impl<B: Body, O: BodyObserver> Body for Watched<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(observer) = this.observer.0.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        observer.data(data.chunk());
                    } else if let Some(trailers) = frame.trailers_ref() {
                        observer.trailers(trailers);
                    }
                }
            }
            Some(Err(_)) => this.observer.end(BodyEnd::Failed),
            None => this.observer.end(BodyEnd::Finished),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
