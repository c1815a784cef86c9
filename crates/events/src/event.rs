//! In-memory events as structure-of-arrays: the form every reader yields and every representation reads.

/// Owned events: pixel column and row, polarity (0 = OFF, 1 = ON) and time in µs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBatch {
    pub x: Vec<u16>,
    pub y: Vec<u16>,
    pub p: Vec<u8>,
    pub t: Vec<i64>,
}

/// Borrowed events, all four slices of equal length.
#[derive(Debug, Clone, Copy)]
pub struct EventSlice<'a> {
    pub x: &'a [u16],
    pub y: &'a [u16],
    pub p: &'a [u8],
    pub t: &'a [i64],
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.t.len()
    }
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
    pub fn as_slice(&self) -> EventSlice<'_> {
        EventSlice {
            x: &self.x,
            y: &self.y,
            p: &self.p,
            t: &self.t,
        }
    }
    pub fn slice(&self, range: std::ops::Range<usize>) -> EventSlice<'_> {
        EventSlice {
            x: &self.x[range.clone()],
            y: &self.y[range.clone()],
            p: &self.p[range.clone()],
            t: &self.t[range],
        }
    }
    /// Removes every event, keeping the memory.
    pub fn clear(&mut self) {
        self.x.clear();
        self.y.clear();
        self.p.clear();
        self.t.clear();
    }
    /// Drops the first `n` events (used to slide a streaming buffer forward).
    pub fn drain_front(&mut self, n: usize) {
        self.x.drain(..n);
        self.y.drain(..n);
        self.p.drain(..n);
        self.t.drain(..n);
    }
    pub fn extend(&mut self, other: &EventBatch) {
        self.x.extend_from_slice(&other.x);
        self.y.extend_from_slice(&other.y);
        self.p.extend_from_slice(&other.p);
        self.t.extend_from_slice(&other.t);
    }
}

impl<'a> EventSlice<'a> {
    pub fn len(&self) -> usize {
        self.t.len()
    }
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
    pub fn slice(&self, range: std::ops::Range<usize>) -> EventSlice<'a> {
        EventSlice {
            x: &self.x[range.clone()],
            y: &self.y[range.clone()],
            p: &self.p[range.clone()],
            t: &self.t[range],
        }
    }
}
