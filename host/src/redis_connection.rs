//! One Redis server, as the key-value store and the shared rates both reach it: the
//! connection is made at the first call and remakes itself after a failure, and every
//! call, connecting included, is held to a timeout. A failure is its text.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

pub struct RedisConnection {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisConnection {
    /// The server at `url` (checked, not connected to); calls take at most `timeout`.
    pub fn open(url: &str, timeout: Duration) -> redis::RedisResult<RedisConnection> {
        Ok(RedisConnection {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
            timeout,
        })
    }

    /// `request` on the connection, within the timeout.
    pub async fn call<T>(
        &self,
        request: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let call = async {
            let mut connection = self.connection().await?;
            request(&mut connection).await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.timeout.as_millis())))
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let made = self.connection.get_or_try_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            self.client.get_connection_manager_with_config(config)
        });
        made.await.cloned().map_err(|e| e.to_string())
    }
}
