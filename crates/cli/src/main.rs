//! `aadgate`: authenticating reverse proxy, dev identity provider and demo.

use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "dev-idp")]
use aadgate_cli::demo;
use aadgate_cli::{check, proxy, sessions, spawn_session_sweeper};
use aadgate_core::Config;
use aadgate_core::config::LogFormat;
#[cfg(feature = "dev-idp")]
use aadgate_dev_idp::{DevIdp, DevIdpConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aadgate",
    version,
    about = "Microsoft Entra ID sign-in with app roles in front of any web app"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authenticating reverse proxy.
    Proxy {
        /// TOML configuration file; repeat it to layer files, later ones
        /// overriding earlier ones (a base file, then one per environment).
        /// Default: the paths in AADGATE_CONFIG (`:`-separated), else none:
        /// the environment alone. AADGATE_<SECTION>_<KEY> overrides every file.
        #[arg(long, short, value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// Run a local identity provider that speaks Entra ID's v2 endpoints.
    #[cfg(feature = "dev-idp")]
    DevIdp {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4181")]
        listen: std::net::SocketAddr,
        /// TOML with users, roles, client and redirect URIs (default: built-in users).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Start the dev IdP, the proxy and a sample dashboard: nothing to configure.
    #[cfg(feature = "dev-idp")]
    Demo {
        /// Port of the proxy (the URL to open).
        #[arg(long, default_value_t = 4180)]
        port: u16,
        /// Port of the dev identity provider.
        #[arg(long, default_value_t = 4181)]
        idp_port: u16,
    },
    /// List or revoke signed-in sessions (with a Redis store, while the
    /// replicas run: a revoked session ends on every replica within a second).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Check a proxy configuration and exit: names the key and the fix on error.
    CheckConfig {
        /// TOML configuration file; repeat it to layer files, later ones
        /// overriding earlier ones (a base file, then one per environment).
        /// Default: the paths in AADGATE_CONFIG (`:`-separated), else none:
        /// the environment alone. AADGATE_<SECTION>_<KEY> overrides every file.
        #[arg(long, short, value_name = "FILE")]
        config: Vec<PathBuf>,
        /// Also ask the provider and the app: discovery and keys, the tenant,
        /// the client id and secret, the redirect URI, the upstream.
        #[arg(long)]
        online: bool,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    /// Every live session: id, user, name, sign-in, last use, end.
    List {
        /// TOML configuration file; repeat it to layer files, later ones
        /// overriding earlier ones (a base file, then one per environment).
        /// Default: the paths in AADGATE_CONFIG (`:`-separated), else none:
        /// the environment alone. AADGATE_<SECTION>_<KEY> overrides every file.
        #[arg(long, short, value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// End sessions: one user's, one session, or all.
    Revoke {
        /// TOML configuration file; repeat it to layer files, later ones
        /// overriding earlier ones (a base file, then one per environment).
        /// Default: the paths in AADGATE_CONFIG (`:`-separated), else none:
        /// the environment alone. AADGATE_<SECTION>_<KEY> overrides every file.
        #[arg(long, short, value_name = "FILE")]
        config: Vec<PathBuf>,
        /// The user's object id (oid), UPN or email.
        #[arg(long)]
        user: Option<String>,
        /// A session id from `aadgate sessions list`.
        #[arg(long)]
        session: Option<String>,
        /// Every session.
        #[arg(long)]
        all: bool,
    },
}

/// Sets up the log; the guard flushes it when dropped (at exit).
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AADGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lines are written by a thread of their own, in batches: a request
    // never waits for the write (the access log is a line per request).
    // Not lossy: under a flood the buffer fills and requests wait, rather
    // than lines being dropped.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("aadgate-log")
        .finish(std::io::stdout());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Json => log.json().flatten_event(true).init(),
        // Colour only on a terminal: no escape codes in files, pipes and journald.
        LogFormat::Text => log
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stdout())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .init(),
    }
    guard
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A listening socket from systemd (socket activation), taken here while
    // the process has one thread: reading it removes LISTEN_FDS/LISTEN_PID
    // from the environment, which must not race another thread.
    let mut inherited = match &cli.command {
        Command::Proxy { .. } => listenfd::ListenFd::from_env(),
        _ => listenfd::ListenFd::empty(),
    };
    // The proxy's configuration says how to log; everything else logs text.
    let format = match &cli.command {
        Command::Proxy { config } => load(config)
            .ok()
            .and_then(|c| c.proxy_settings().ok())
            .map_or(LogFormat::Text, |s| s.log_format),
        _ => LogFormat::Text,
    };
    let _log = init_tracing(format);
    let result = match cli.command {
        // The proxy runs one single-threaded runtime per worker (see
        // `proxy::serve_workers`); this thread's runtime is worker 0.
        Command::Proxy { config } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(run_proxy(config, &mut inherited))),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(run(command))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aadgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration files: `--config` in order, else the paths in
/// `AADGATE_CONFIG` (separated as in `PATH`: `:` on Unix, `;` on Windows),
/// else none.
fn config_files(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    std::env::var_os("AADGATE_CONFIG")
        .map(|paths| {
            std::env::split_paths(&paths)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the configuration files (see [`config_files`]) and the environment.
fn load(given: &[PathBuf]) -> Result<Config, aadgate_core::ConfigError> {
    Config::load_files(&config_files(given))
}

async fn run_proxy(
    config: Vec<PathBuf>,
    inherited: &mut listenfd::ListenFd,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = load(&config)?;
    let proxy_settings = config.proxy_settings()?;
    let auth = proxy::auth(&config, &proxy_settings)?;
    let (listener, socket_activated) = match proxy::inherited(inherited)? {
        Some(l) => (l, true),
        None => {
            let l = proxy::bind(proxy_settings.listen).map_err(|e| {
                format!(
                    "cannot listen on {} ({e}). Fix: change `listen` or stop what uses that port",
                    proxy_settings.listen
                )
            })?;
            (l, false)
        }
    };
    let metrics_listener = match proxy_settings.metrics_listen {
        None => None,
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "cannot listen on {addr} ({e}). Fix: change `metrics_listen` or stop what uses that port"
            )
        })?),
    };
    let bound = listener.local_addr()?;
    if socket_activated && bound != proxy_settings.listen {
        tracing::info!(listen = %proxy_settings.listen, socket = %bound, "serving the socket passed by socket activation; `listen` is not used");
    }
    let settings = auth.settings();
    tracing::info!(listen = %bound, socket_activated, public_url = %settings.public_url, upstream = %proxy_settings.upstream, issuer = %settings.issuer, workers = proxy_settings.workers, "aadgate proxy started");
    match auth.provider().metadata().await {
        Ok(_) => {}
        Err(e @ aadgate_core::ProviderError::Unreachable { .. }) => {
            tracing::warn!(error = %e, "identity provider not reachable yet; sign-ins fail until it is, existing sessions keep working");
        }
        Err(e @ aadgate_core::ProviderError::Failing { .. }) => {
            tracing::warn!(error = %e, "identity provider is failing (it answered with a server error); sign-ins fail until it recovers, existing sessions keep working");
        }
        Err(e) => {
            tracing::error!(error = %e, "the identity provider refused aadgate's configuration: sign-ins fail until it is fixed (check oidc.tenant, oidc.cloud, oidc.issuer; `aadgate check-config --online` names the key)");
        }
    }
    spawn_session_sweeper(&auth);
    // Scrapes are answered until the proxy has stopped (while it drains
    // too), on this thread's runtime (worker 0's).
    let metrics_server = match metrics_listener {
        Some(l) => {
            tracing::info!("Prometheus metrics at http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(aadgate_cli::metrics::serve(
                l,
                auth.clone(),
                std::future::pending(),
            )))
        }
        None => None,
    };
    let served = proxy::serve_workers(listener, auth, proxy_settings, shutdown_signal()).await;
    if let Some(task) = metrics_server {
        task.abort();
    }
    served?;
    Ok(())
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match command {
        #[cfg(feature = "dev-idp")]
        Command::DevIdp { listen, config } => {
            let cfg = match config {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                    DevIdpConfig::from_toml_str(&text)?
                }
                None => DevIdpConfig::default(),
            };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let idp = DevIdp::new(cfg, url::Url::parse(&format!("http://{addr}"))?)?;
            println!("aadgate dev IdP (for development only) listening on http://{addr}");
            println!("  issuer:        {}", idp.issuer());
            println!("  tenant:        {}", idp.config().tenant_id);
            println!("  client_id:     {}", idp.config().client_id);
            println!("  client_secret: {}", idp.config().client_secret);
            for app in &idp.config().client_apps {
                println!(
                    "  client app:    {} (client_id {}, secret {}, roles {:?})",
                    app.name, app.client_id, app.client_secret, app.roles
                );
            }
            println!(
                "  users:         {}",
                idp.config()
                    .users
                    .iter()
                    .map(|u| u.username.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            axum::serve(listener, idp.router())
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            Ok(())
        }
        #[cfg(feature = "dev-idp")]
        Command::Demo { port, idp_port } => {
            let d = demo::start(demo::DemoPorts {
                proxy: port,
                idp: idp_port,
            })
            .await?;
            println!();
            println!("  aadgate demo is running. Open:  {}", d.url);
            println!();
            println!("  Sign in as one of the dev IdP's users:");
            for u in &d.idp.config().users {
                let roles = if u.roles.is_empty() {
                    "no role".to_owned()
                } else {
                    u.roles.join(", ")
                };
                println!("    {:<8} {:<14} {}", u.username, u.name, roles);
            }
            println!();
            println!("  Dev identity provider: {}", d.issuer);
            println!("  Press Ctrl-C to stop.");
            shutdown_signal().await;
            Ok(())
        }
        Command::Proxy { config } => run_proxy(config, &mut listenfd::ListenFd::empty()).await,
        Command::Sessions { action } => match action {
            SessionsAction::List { config } => {
                let store = sessions::open(&load(&config)?)?;
                print!("{}", sessions::table(&store.list().await?));
                Ok(())
            }
            SessionsAction::Revoke {
                config,
                user,
                session,
                all,
            } => {
                let which = sessions::which(user, session, all)?;
                let store = sessions::open(&load(&config)?)?;
                let n = store.revoke(&which).await?;
                println!("revoked {n} session(s)");
                Ok(())
            }
        },
        Command::CheckConfig { config, online } => {
            let files = config_files(&config);
            let config = Config::load_files(&files)?;
            let settings = config.validate()?;
            let proxy_settings = config.proxy_settings()?;
            println!("configuration OK");
            if files.is_empty() {
                println!("  read from:    the environment only (no --config, no AADGATE_CONFIG)");
            } else {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                println!(
                    "  read from:    {}, then the environment",
                    names.join(", then ")
                );
            }
            println!("  public_url:   {}", settings.public_url);
            println!(
                "  redirect URI: {}  (register this at the provider)",
                settings.redirect_uri
            );
            println!("  upstream:     {}", proxy_settings.upstream);
            if let Some(addr) = proxy_settings.metrics_listen {
                println!("  metrics:      http://{addr}/metrics");
            }
            println!("  issuer:       {}", settings.issuer);
            println!("  roles:        {:?}", settings.policy.roles());
            if online {
                println!("online checks:");
                let checks = check::run(&settings, &proxy_settings, |c| println!("{c}")).await;
                let failed: Vec<&str> = checks
                    .iter()
                    .filter(|c| c.outcome == check::Outcome::Fail)
                    .map(|c| c.name)
                    .collect();
                if !failed.is_empty() {
                    return Err(format!(
                        "{} of {} online checks failed: {}",
                        failed.len(),
                        checks.len(),
                        failed.join(", ")
                    )
                    .into());
                }
                println!("all online checks passed");
            }
            Ok(())
        }
    }
}
