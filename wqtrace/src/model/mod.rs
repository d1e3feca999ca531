//! Pure model of what the events say: pipes, ring slots, locks, rejections. No kernel access.
