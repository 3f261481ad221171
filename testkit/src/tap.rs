//! A recording HTTP tap in front of the real gateway: every request is
//! forwarded unchanged and its path and body kept, so a test can count the
//! requests a store makes and see what each carried. Runs on a runtime of
//! its own, so blocking and async tests alike can use it.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::oneshot;

/// One request the tap forwarded.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `""` or `"/pipeline"`.
    pub path: String,
    pub body: String,
}

impl Seen {
    /// How many commands the request carried.
    pub fn commands(&self) -> usize {
        match self.path.as_str() {
            "/pipeline" => self.body.matches("[\"").count(),
            _ => 1,
        }
    }
}

pub struct Tap {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Forward {
    client: reqwest::Client,
    target: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn forward(
    State(forward): State<Forward>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().trim_end_matches('/').to_owned();
    forward.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut request = forward.client.post(format!("{}{path}", forward.target));
    if let Some(auth) = headers.get("authorization") {
        request = request.header("authorization", auth);
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            (status, response.text().await.unwrap_or_default())
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

impl Tap {
    /// A tap on a free loopback port forwarding to `target` (a base URL).
    pub fn start(target: String) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Forward {
            client: reqwest::Client::new(),
            target,
            seen: Arc::clone(&seen),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let port = port_rx.recv().expect("the tap's port");
        Self {
            port,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests forwarded so far, and forgets them.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
