//! Whether the server should be sent traffic, for balancers and orchestrators (the
//! `/readyz` endpoint): ready once its plugins are loaded and its listeners bound, and
//! not ready again from the moment it starts draining (SIGINT/SIGTERM), while sessions in
//! flight finish.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Loading plugins, binding listeners.
    Starting,
    Ready,
    /// Stopped accepting; sessions in flight may finish.
    Draining,
}

#[derive(Debug, Default)]
pub struct Health(AtomicU8);

impl Health {
    pub fn set(&self, readiness: Readiness) {
        self.0.store(readiness as u8, Ordering::SeqCst);
    }

    pub fn readiness(&self) -> Readiness {
        match self.0.load(Ordering::SeqCst) {
            1 => Readiness::Ready,
            2 => Readiness::Draining,
            _ => Readiness::Starting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_then_ready_then_draining() {
        let health = Health::default();
        assert_eq!(health.readiness(), Readiness::Starting);
        health.set(Readiness::Ready);
        assert_eq!(health.readiness(), Readiness::Ready);
        health.set(Readiness::Draining);
        assert_eq!(health.readiness(), Readiness::Draining);
    }
}
