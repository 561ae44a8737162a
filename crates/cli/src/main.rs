//! The `cartwright` command.

use anyhow::{Context, bail};
use cartwright::{LogFormat, Server, Settings};
use cartwright_core::operator::{NewOperator, Role};
use cartwright_core::values::{Email, Password, Username};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Self-hosted e-commerce operations: storefront orders, reward checks, digital goods.
#[derive(Parser)]
#[command(name = "cartwright", version, about)]
struct Cli {
    /// Configuration file (default: ./cartwright.toml when present).
    #[arg(long, global = true, env = "CARTWRIGHT_CONFIG")]
    config: Option<PathBuf>,
    /// Log format, overriding the configuration: human or json.
    #[arg(long, global = true, value_parser = ["human", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: REST API, docs, metrics.
    Serve {
        /// Listen here instead of the configured address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Browser runs at once in this process (0: HTTP only, the work done by `cartwright
        /// worker` processes on the same PostgreSQL).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Run the demo: the server on its own SQLite database in ./cartwright-demo and the demo
    /// shop beside it, with a demo admin and the shop's accounts, products and addresses.
    Demo {
        /// Listen here.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Serve the demo shop here.
        #[arg(long, default_value = "127.0.0.1:8090")]
        shop_listen: SocketAddr,
        /// Where the demo keeps its data.
        #[arg(long, default_value = "./cartwright-demo")]
        data_dir: PathBuf,
    },
    /// Run only the demo shop: a storefront and seller centre to automate against.
    DemoShop {
        /// Listen here.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Seeds the data and the class-name hashes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many customers to create.
        #[arg(long, default_value_t = 60)]
        customers: usize,
        /// Which pages: `beauty` (profiles/demo.toml) or `threads` (profiles/threads.toml).
        #[arg(long, default_value = "beauty")]
        flavour: cartwright_demo_shop::Flavour,
    },
    /// Run jobs (orders, sign-in tests) from the database without serving HTTP: add machines
    /// that share one PostgreSQL.
    Worker {
        /// Browser runs at once (default: the `workers` setting).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Check the rewards points of many accounts over plain HTTP and follow the run to the
    /// end. Exits 0 when every account was read, 2 when some were not.
    Rewards {
        /// Storefront by slug (default: the only one, or the one using --profile).
        #[arg(long)]
        storefront: Option<String>,
        /// Storefront by the name of its profile.
        #[arg(long)]
        profile: Option<String>,
        /// Accounts: positions `1-500`, `7`, `ids:3,9,12` or `tag:NAME`.
        #[arg(long)]
        accounts: String,
        /// Checks at once (default: the profile's).
        #[arg(long)]
        concurrency: Option<u32>,
        /// Requests per second for this run (it can only lower the site's limit).
        #[arg(long)]
        rate_limit: Option<f64>,
        /// Write the results to this file as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Order the same cart from many accounts and follow it to the end. Exits 0 when every
    /// order was placed, 2 when some were not.
    Run(cartwright::run::RunArgs),
    /// Storefronts.
    Storefront {
        #[command(subcommand)]
        command: StorefrontCommand,
    },
    /// Products a batch can order.
    Product {
        #[command(subcommand)]
        command: ProductCommand,
    },
    /// Delivery addresses.
    Address {
        #[command(subcommand)]
        command: AddressCommand,
    },
    /// Storefront profiles.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Digital goods' stock.
    Stock {
        #[command(subcommand)]
        command: StockCommand,
    },
    /// The buyer assistant's FAQ.
    Faq {
        #[command(subcommand)]
        command: FaqCommand,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the configuration in effect (secrets hidden) and exit.
    Config,
}

#[derive(Subcommand)]
enum StorefrontCommand {
    /// Add a storefront (its profile must load).
    Add(cartwright::catalog::StorefrontArgs),
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Add a product.
    Add(cartwright::catalog::ProductArgs),
    /// Add the products of a CSV file whose first line names its columns: name, url, and
    /// optionally variant, sku, price. A file with a bad row adds nothing; rows already in
    /// the catalogue are skipped and named (exit 2).
    Import {
        /// Storefront by slug (default: the only one).
        #[arg(long)]
        storefront: Option<String>,
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AddressCommand {
    /// Add a delivery address.
    Add(cartwright::catalog::AddressArgs),
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ProfileCommand {
    /// Check profile files: every problem is listed with its file, line, step and field.
    Check {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run an order's phases for the first account of --accounts up to, never including, the
    /// final click, and write a report: each step with what its selectors matched, how long
    /// it took and a screenshot. Exits 0 when the order was ready to be placed, 2 otherwise.
    Rehearse {
        #[command(flatten)]
        order: cartwright::run::RunArgs,
        /// Write the report (report.md and a screenshot per step) here.
        #[arg(long, default_value = "rehearsal")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum FaqCommand {
    /// Measure retrieval on labelled questions: recall@1, MRR@10, answered precision and
    /// recall at the threshold, out-of-scope questions answered; and suggest a threshold.
    Eval(cartwright::faq::EvalArgs),
}

#[derive(Subcommand)]
enum StockCommand {
    /// Import stock items for a product from a file: one code a line, or CSV of
    /// `login,password[,notes]` for credentials. Prints what was imported and every line that
    /// was not (a duplicate in the file or in stock, or not an item). Exits 2 when some were not.
    Import {
        /// The product's SKU.
        #[arg(long)]
        product: String,
        /// The file (`-` for standard input).
        file: PathBuf,
        /// Report what would be imported; import nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an operator. The password is read from a prompt, or from standard input when it
    /// is not a terminal; never from the command line.
    Create {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Role: admin, operator or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Contact email.
        #[arg(long)]
        email: Option<String>,
    },
}

/// mimalloc: the server allocates per row and per response from many threads at once, where
/// glibc's allocator spends much of its time consolidating and locking.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(settings: &Settings) {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| tracing_subscriber::EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| settings.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(cartwright::config::log_filter(&spec))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format.as_deref() {
        settings.log_format = if format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Human
        };
    }
    init_logging(&settings);
    match cli.command {
        Command::Serve { listen, workers } => {
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            if let Some(workers) = workers {
                settings.workers = workers;
            }
            let server = Server::start(&settings).await?;
            eprintln!(
                "Cartwright is listening on http://{} (dashboard at /, API docs at /api/docs)",
                server.addr
            );
            shutdown_signal().await;
            tracing::info!("shutting down");
            server.stop().await.context("stopping the server")?;
        }
        Command::Demo {
            listen,
            shop_listen,
            data_dir,
        } => {
            settings.listen = listen;
            settings.data_dir = data_dir;
            settings.database_url = None;
            let demo = cartwright::demo::start(&settings, shop_listen).await?;
            eprintln!();
            eprintln!("  Cartwright demo is running.");
            eprintln!("  Dashboard:  http://{}/", demo.server.addr);
            eprintln!("  API docs:   http://{}/api/docs", demo.server.addr);
            eprintln!(
                "  Sign in as: {} / {}",
                cartwright::demo::DEMO_USERNAME,
                cartwright::demo::DEMO_PASSWORD
            );
            eprintln!(
                "  Demo shop:  {}/  (seller centre: {}/seller/login, seller / seller-demo)",
                demo.shop.url(),
                demo.shop.url()
            );
            eprintln!(
                "  Second storefront (forms, sizes, a three-page checkout): {}/",
                demo.threads.url()
            );
            eprintln!(
                "  Marketplace: partner id {}, shop id {}, partner key {}; pushes go to {}",
                demo.shop.shop.market().config().partner_id,
                demo.shop.shop.market().config().shop_id,
                demo.shop.shop.market().config().partner_key,
                demo.push_url
            );
            eprintln!(
                "               a new demo order every few seconds: watch Deliveries on the dashboard"
            );
            eprintln!(
                "  Data:       {} (delete it to start afresh)",
                settings.data_dir.display()
            );
            eprintln!("  Stop with Ctrl-C.");
            eprintln!();
            shutdown_signal().await;
            demo.server.stop().await.context("stopping the server")?;
            demo.shop.stop().await.context("stopping the demo shop")?;
        }
        Command::DemoShop {
            listen,
            seed,
            customers,
            flavour,
        } => {
            let config = cartwright_demo_shop::ShopConfig {
                seed,
                customers,
                flavour,
                ..Default::default()
            };
            let shop = cartwright_demo_shop::start(listen, config)
                .await
                .context("starting the demo shop")?;
            eprintln!(
                "Demo shop on {}/ (control endpoints under /_control)",
                shop.url()
            );
            shutdown_signal().await;
            shop.stop().await.context("stopping the demo shop")?;
        }
        Command::Worker { concurrency } => {
            if let Some(n) = concurrency {
                settings.workers = n;
            }
            cartwright::run::worker(&settings, shutdown_signal()).await?;
        }
        Command::Run(args) => exit_with(
            cartwright::run::run(&settings, args)
                .await
                .map(|o| o == cartwright::run::RunOutcome::AllPlaced),
        )?,
        Command::Rewards {
            storefront,
            profile,
            accounts,
            concurrency,
            rate_limit,
            csv,
        } => {
            let args = cartwright::rewards::RewardsArgs {
                storefront,
                profile,
                accounts,
                concurrency,
                rate_limit,
                csv,
            };
            exit_with(cartwright::rewards::rewards(&settings, args).await)?;
        }
        Command::Stock {
            command:
                StockCommand::Import {
                    product,
                    file,
                    dry_run,
                },
        } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading standard input")?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let key = cartwright::secret_key(&settings)?;
            let store = cartwright::open_store(&settings, &key).await?;
            let Some(found) = store.digital_product_by_sku(&product).await? else {
                bail!("no digital product has the SKU {product:?}");
            };
            let report = store.import_stock(found.id, &text, dry_run).await?;
            for line in &report.lines {
                println!(
                    "line {}: {} {}{}",
                    line.line,
                    line.outcome.replace('_', " "),
                    line.item.as_deref().unwrap_or_default(),
                    line.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                );
            }
            println!(
                "{}{} imported, {} duplicates, {} not items; {} available now",
                if dry_run { "dry run: would have " } else { "" },
                report.imported,
                report.duplicates,
                report.invalid,
                report.stock.available
            );
            store.close().await;
            if report.duplicates + report.invalid > 0 {
                std::process::exit(2);
            }
        }
        Command::Storefront {
            command: StorefrontCommand::Add(args),
        } => exit_with(
            cartwright::catalog::add_storefront(&settings, args)
                .await
                .map(|()| true),
        )?,
        Command::Product {
            command: ProductCommand::Add(args),
        } => exit_with(
            cartwright::catalog::add_product(&settings, args)
                .await
                .map(|()| true),
        )?,
        Command::Product {
            command: ProductCommand::Import { storefront, file },
        } => exit_with(
            cartwright::catalog::import_products(&settings, storefront.as_deref(), &file).await,
        )?,
        Command::Address {
            command: AddressCommand::Add(args),
        } => exit_with(
            cartwright::catalog::add_address(&settings, args)
                .await
                .map(|()| true),
        )?,
        Command::Profile {
            command: ProfileCommand::Rehearse { order, out },
        } => exit_with(cartwright::rehearse::rehearse(&settings, order, &out).await)?,
        Command::Profile {
            command: ProfileCommand::Check { files },
        } => {
            let mut bad = false;
            for file in &files {
                match cartwright_engine::profile::load_file(file) {
                    Ok(p) => {
                        let phases: Vec<&str> = p.phases.keys().map(|k| k.as_str()).collect();
                        println!(
                            "{}: ok ({} selectors, phases: {})",
                            file.display(),
                            p.selectors.len(),
                            phases.join(", ")
                        );
                    }
                    Err(errors) => {
                        bad = true;
                        println!("{errors}");
                    }
                }
            }
            if bad {
                std::process::exit(1);
            }
        }
        Command::Migrate => {
            let key = cartwright::secret_key(&settings)?;
            let store = cartwright::open_store(&settings, &key).await?;
            store.close().await;
            eprintln!("database is up to date");
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    username,
                    role,
                    email,
                },
        } => {
            let username =
                Username::parse(&username).map_err(|m| anyhow::anyhow!("--username {m}"))?;
            let role: Role = role.parse().map_err(|m| anyhow::anyhow!("--role: {m}"))?;
            let email = email
                .map(|e| Email::parse(&e).map_err(|m| anyhow::anyhow!("--email {m}")))
                .transpose()?;
            let password = read_password()?;
            let key = cartwright::secret_key(&settings)?;
            let store = cartwright::open_store(&settings, &key).await?;
            let hash = cartwright_web::auth::password::hash_blocking(password.expose())
                .map_err(|_| anyhow::anyhow!("hashing the password failed"))?;
            let new = NewOperator {
                username,
                email,
                password,
                role,
            };
            let operator = store.create_operator(&new, &hash).await?;
            store.close().await;
            eprintln!(
                "created {} {} (id {})",
                operator.role.as_str(),
                operator.username,
                operator.id
            );
        }
        Command::Faq {
            command: FaqCommand::Eval(args),
        } => {
            cartwright::faq::eval(&args, settings.embedding_model())?;
        }
        Command::Config => print!("{}", settings.to_toml()?),
    }
    Ok(())
}

fn read_password() -> anyhow::Result<Password> {
    let text = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    };
    Password::parse(&text).map_err(|m| anyhow::anyhow!("password {m}"))
}

/// A command's end as its exit code: 0 when it did all it was asked, 2 when some of it was
/// not done, 64 for a wrong argument (named on standard error).
fn exit_with(result: Result<bool, cartwright::run::RunError>) -> anyhow::Result<()> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(2),
        Err(cartwright::run::RunError::Usage(m)) => {
            eprintln!("error: {m}");
            std::process::exit(64);
        }
        Err(e) => Err(e.into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
