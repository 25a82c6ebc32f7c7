//! The prost-build service generator: for each .proto `service`, the grain
//! trait, the actor, the kind builder, the client and the message
//! registration, written next to the service's messages.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use prost_build::{Comments, Method, Service, ServiceGenerator};
use prost_types::{DescriptorProto, FileDescriptorSet};

/// Where generated code finds the runtime.
const RT: &str = "::protoactor_grain";

/// Rust paths (relative to the package's module) of every message of
/// every package in `fds`, keyed by protobuf package.
pub(crate) fn messages_by_package(fds: &FileDescriptorSet) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for file in &fds.file {
        let list = out.entry(file.package().to_string()).or_default();
        for message in &file.message_type {
            collect_messages(message, "", list);
        }
    }
    out
}

fn collect_messages(message: &DescriptorProto, module: &str, out: &mut Vec<String>) {
    if message.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false) {
        return;
    }
    let name = message.name();
    out.push(format!("{module}{}", rust_ident(&name.to_upper_camel_case())));
    let nested = format!("{module}{}::", rust_ident(&name.to_snake_case()));
    for inner in &message.nested_type {
        collect_messages(inner, &nested, out);
    }
}

/// Escapes Rust keywords the way prost does (`r#type`; `self` and friends
/// get a trailing underscore).
fn rust_ident(name: &str) -> String {
    match name {
        "self" | "super" | "crate" | "Self" | "extern" => format!("{name}_"),
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if" | "impl" | "in"
        | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref" | "return" | "static" | "struct"
        | "trait" | "true" | "type" | "unsafe" | "use" | "where" | "while" | "abstract" | "become" | "box" | "do"
        | "final" | "macro" | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "dyn" | "try" | "gen" => format!("r#{name}"),
        _ => name.to_string(),
    }
}

/// The rpcs of `fds` a grain cannot serve (streaming ones, and
/// `google.protobuf.Empty`, which prost maps to `()`), as messages.
pub(crate) fn unsupported_rpcs(fds: &FileDescriptorSet) -> Vec<String> {
    let mut problems = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            for method in &service.method {
                let full = format!("{}.{}/{}", file.package(), service.name(), method.name());
                if method.client_streaming() || method.server_streaming() {
                    problems.push(format!(
                        "rpc {full} streams (client_streaming: {}, server_streaming: {}); grains take one request and give one response: declare it without `stream`",
                        method.client_streaming(),
                        method.server_streaming()
                    ));
                }
                for ty in [method.input_type(), method.output_type()] {
                    if ty == ".google.protobuf.Empty" {
                        problems.push(format!(
                            "rpc {full} uses google.protobuf.Empty, which prost maps to `()`; declare an empty message of your own instead"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The options of one rpc; see [`Builder::method`](crate::Builder::method).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodOptions {
    reentrant: bool,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
}

impl MethodOptions {
    /// The grain keeps handling messages while this rpc runs: its method
    /// takes `&mut self` only to start, and returns a future that does not
    /// borrow the grain (take what it needs first; to change state with the
    /// result, send the grain a message). The response goes to the caller
    /// when the future completes. Requests that arrive meanwhile run
    /// before it completes, so use it for rpcs that wait on other grains or
    /// I/O, where a blocked mailbox would stall (or deadlock) callers.
    pub fn reentrant(mut self) -> Self {
        self.reentrant = true;
        self
    }

    /// The client's per-attempt timeout for this rpc, unless the call's
    /// `CallOptions` set one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The client's overall deadline (retries included) for this rpc, unless
    /// the call's `CallOptions` set one.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// The configured rpc names (`package.Service/Method`) that no service in
/// `fds` declares, as messages.
pub(crate) fn unknown_methods<'a>(fds: &FileDescriptorSet, names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut known = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            for method in &service.method {
                known.push(rpc_name(file.package(), service.name(), method.name()));
            }
        }
    }
    let mut unknown: Vec<String> = names
        .filter(|name| !known.contains(name))
        .map(|name| {
            format!("method options name rpc {name}, which no compiled service declares (known: {})", known.join(", "))
        })
        .collect();
    unknown.sort();
    unknown
}

/// `package.Service/Method` (`Service/Method` without a package).
fn rpc_name(package: &str, service: &str, method: &str) -> String {
    if package.is_empty() { format!("{service}/{method}") } else { format!("{package}.{service}/{method}") }
}

/// Writes the grain code for each service (see the crate docs).
#[derive(Debug, Default)]
pub(crate) struct GrainGenerator {
    pub(crate) messages: HashMap<String, Vec<String>>,
    pub(crate) methods: HashMap<String, MethodOptions>,
}

impl ServiceGenerator for GrainGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let messages = self.messages.get(&service.package).cloned().unwrap_or_default();
        buf.push_str(&generate_service(&service, &messages, &self.methods));
    }
}

fn docs(comments: &Comments, fallback: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&String> = comments.leading.iter().chain(comments.trailing.iter()).collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        for line in fallback.lines() {
            let _ = writeln!(out, "/// {line}");
        }
    } else {
        for line in lines {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with(' ') {
                let _ = writeln!(out, "///{line}");
            } else {
                let _ = writeln!(out, "/// {line}");
            }
        }
    }
    out
}

/// The generated code for one service; `messages` are the Rust paths of
/// the messages of its package, registered with the remote serializer.
pub(crate) fn generate_service(
    service: &Service,
    messages: &[String],
    methods: &HashMap<String, MethodOptions>,
) -> String {
    let name = &service.name;
    let full = if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    };
    let kind_const = format!("{}_KIND", name.to_shouty_snake_case());
    let grain = format!("{name}Grain");
    let actor = format!("{name}Actor");
    let kind = format!("{name}Kind");
    let client = format!("{name}Client");
    let register = format!("register_{}_messages", name.to_snake_case());
    let a = format!("{RT}::actor");
    let no_options = MethodOptions::default();
    let options_of = |m: &Method| {
        methods.get(&rpc_name(&service.package, &service.proto_name, &m.proto_name)).unwrap_or(&no_options)
    };
    let mut out = String::new();

    let _ = writeln!(out, "/// The cluster kind name of grains of service `{full}`.");
    let _ = writeln!(out, "pub const {kind_const}: &str = \"{}\";", service.proto_name);

    // The trait.
    out.push_str(&docs(&service.comments, &format!("A grain of service `{full}`.")));
    let _ = writeln!(
        out,
        "///\n/// Implement it and host it with [`{kind}`]; call it with [`{client}`]. Each rpc runs \
         to completion before the grain sees its next message, except reentrant ones (their \
         methods return a future that runs while the grain handles other messages)."
    );
    let _ = writeln!(out, "pub trait {grain}: Send + 'static {{");
    let _ = writeln!(
        out,
        "/// Runs when an activation starts, before any request, with the grain's identity.
fn init(&mut self, identity: &{RT}::cluster::ClusterIdentity, ctx: &mut {a}::Context) -> impl ::std::future::Future<Output = {a}::ActorResult> + Send {{
    let _ = (identity, ctx);
    async {{ Ok(()) }}
}}
/// Runs when the activation stops: passivated after its idle timeout, or its member shutting down.
fn terminate(&mut self, ctx: &mut {a}::Context) -> impl ::std::future::Future<Output = {a}::ActorResult> + Send {{
    let _ = ctx;
    async {{ Ok(()) }}
}}
/// Handles any other message: sent to the grain directly (not through [`{client}`]), and lifecycle messages other than `Started` and `Stopped`.
fn receive_default(&mut self, ctx: &mut {a}::Context) -> impl ::std::future::Future<Output = {a}::ActorResult> + Send {{
    let _ = ctx;
    async {{ Ok(()) }}
}}"
    );
    for m in &service.methods {
        out.push_str(&docs(&m.comments, &format!("Rpc `{}`.", m.proto_name)));
        if options_of(m).reentrant {
            let _ = writeln!(
                out,
                "///
/// Reentrant: the returned future runs without borrowing the grain, which meanwhile handles \
other messages; the caller gets its result when it completes.
fn {}(&mut self, request: {}, ctx: &mut {a}::Context) -> impl ::std::future::Future<Output = ::std::result::Result<{}, {RT}::GrainError>> + Send + use<Self>;",
                m.name, m.input_type, m.output_type
            );
            continue;
        }
        let _ = writeln!(
            out,
            "fn {}(&mut self, request: {}, ctx: &mut {a}::Context) -> impl ::std::future::Future<Output = ::std::result::Result<{}, {RT}::GrainError>> + Send;",
            m.name, m.input_type, m.output_type
        );
    }
    out.push_str("}\n");

    // The actor.
    let _ = writeln!(
        out,
        "/// The actor hosting a [`{grain}`]: runs its hooks and dispatches each rpc request to its method, \
         answering with the response or a [`GrainErrorResponse`]({RT}::GrainErrorResponse).
pub struct {actor}<G> {{
    grain: G,
}}
impl<G> {actor}<G> {{
    /// Hosts `grain`.
    pub fn new(grain: G) -> Self {{
        {actor} {{ grain }}
    }}
    /// The hosted grain.
    pub fn grain(&self) -> &G {{
        &self.grain
    }}
}}
impl<G> ::std::fmt::Debug for {actor}<G> {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        f.debug_struct(\"{actor}\").finish_non_exhaustive()
    }}
}}
impl<G: {grain}> {a}::Actor for {actor}<G> {{
    async fn receive(&mut self, ctx: &mut {a}::Context) -> {a}::ActorResult {{
        if ctx.message_is::<{a}::Started>() {{
            let identity = {RT}::cluster::GrainContext::cluster_identity(ctx).cloned().unwrap_or_default();
            return self.grain.init(&identity, ctx).await;
        }}
        if ctx.message_is::<{a}::Stopped>() {{
            return self.grain.terminate(ctx).await;
        }}
        let Some(request) = ctx.take_message::<{RT}::GrainRequest>() else {{
            return self.grain.receive_default(ctx).await;
        }};
        match request.method_index {{"
    );
    for (index, m) in service.methods.iter().enumerate() {
        let method = format!("{full}/{}", m.proto_name);
        if options_of(m).reentrant {
            let _ = writeln!(
                out,
                "{index} => {{
    let Some(message) = {RT}::decode_request::<{input}>(ctx, &request, \"{method}\") else {{
        return Ok(());
    }};
    let call = {RT}::run_method(self.grain.{mname}(message, ctx));
    ctx.reenter_after(call, |_: &mut Self, ctx, outcome| {RT}::respond(ctx, \"{method}\", outcome));
    Ok(())
}}",
                input = m.input_type,
                mname = m.name,
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{index} => {{
    let Some(message) = {RT}::decode_request::<{input}>(ctx, &request, \"{method}\") else {{
        return Ok(());
    }};
    let outcome = {RT}::run_method(self.grain.{mname}(message, ctx)).await;
    {RT}::respond(ctx, \"{method}\", outcome)
}}",
            input = m.input_type,
            mname = m.name,
        );
    }
    let _ = writeln!(out, "other => {RT}::unknown_method(ctx, \"{full}\", other),\n}}\n}}\n}}");

    // The kind builder.
    let _ = writeln!(
        out,
        "/// Builds the cluster [`Kind`]({RT}::cluster::Kind) `\"{}\"` hosting [`{grain}`]s made by a factory.
pub struct {kind}<G> {{
    factory: ::std::sync::Arc<dyn Fn() -> G + Send + Sync>,
    idle_timeout: ::std::option::Option<::std::time::Duration>,
}}
impl<G: {grain}> {kind}<G> {{
    /// Each activation gets a grain from `factory`.
    pub fn new(factory: impl Fn() -> G + Send + Sync + 'static) -> Self {{
        {kind} {{ factory: ::std::sync::Arc::new(factory), idle_timeout: None }}
    }}
    /// Passivates an activation (its `terminate` runs) after `timeout` without messages.
    pub fn with_idle_timeout(mut self, timeout: ::std::time::Duration) -> Self {{
        self.idle_timeout = Some(timeout);
        self
    }}
    /// The kind to register with `ClusterConfig::with_kind`.
    pub fn into_kind(self) -> {RT}::cluster::Kind {{
        let factory = self.factory;
        let props = {a}::Props::from_producer(move || {actor}::new(factory()));
        let kind = {RT}::cluster::Kind::new({kind_const}, props);
        match self.idle_timeout {{
            Some(timeout) => kind.with_idle_timeout(timeout),
            None => kind,
        }}
    }}
}}
impl<G> ::std::fmt::Debug for {kind}<G> {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        f.debug_struct(\"{kind}\").field(\"idle_timeout\", &self.idle_timeout).finish_non_exhaustive()
    }}
}}
impl<G: {grain}> ::std::convert::From<{kind}<G>> for {RT}::cluster::Kind {{
    fn from(kind: {kind}<G>) -> Self {{
        kind.into_kind()
    }}
}}",
        service.proto_name
    );

    // The client.
    let _ = writeln!(
        out,
        "/// Calls one grain of service `{full}` (kind [`{kind_const}`]) from any member or client of the cluster.
#[derive(Debug, Clone)]
pub struct {client} {{
    cluster: {RT}::cluster::Cluster,
    identity: ::std::string::String,
}}
impl {client} {{
    /// The grain `identity` of this service's kind, reached through `cluster`.
    pub fn new(cluster: &{RT}::cluster::Cluster, identity: impl ::std::convert::Into<::std::string::String>) -> Self {{
        {client} {{ cluster: cluster.clone(), identity: identity.into() }}
    }}
    /// The grain's identity.
    pub fn identity(&self) -> &str {{
        &self.identity
    }}"
    );
    for (index, m) in service.methods.iter().enumerate() {
        out.push_str(&client_method(m, index, &kind_const, options_of(m)));
    }
    out.push_str("}\n");

    // Message registration.
    let mut types: Vec<String> = vec![format!("{RT}::GrainRequest"), format!("{RT}::GrainErrorResponse")];
    for t in messages
        .iter()
        .cloned()
        .chain(service.methods.iter().flat_map(|m| [m.input_type.clone(), m.output_type.clone()]))
    {
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let _ = writeln!(
        out,
        "/// Registers the messages of service `{full}` (and of its package) with the remote serializer, \
         so they can cross the wire: use it on the `RemoteConfig` of every member and client.
pub fn {register}(config: {RT}::remote::RemoteConfig) -> {RT}::remote::RemoteConfig {{
    config"
    );
    for t in &types {
        let _ = writeln!(out, "    .with_protobuf::<{t}>()");
    }
    out.push_str("}\n");
    out
}

fn millis(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("Some(::std::time::Duration::from_millis({}))", d.as_millis()),
        None => "None".to_string(),
    }
}

fn client_method(m: &Method, index: usize, kind_const: &str, options: &MethodOptions) -> String {
    let mut out = docs(&m.comments, &format!("Calls rpc `{}`.", m.proto_name));
    let (call_options, defaults) = if options.timeout.is_none() && options.deadline.is_none() {
        ("options".to_string(), "`CallOptions::default()` keeps the cluster's".to_string())
    } else {
        (
            format!("&{RT}::method_options(options, {}, {})", millis(options.timeout), millis(options.deadline)),
            format!(
                "fields left `None` take this rpc's defaults (timeout {:?}, deadline {:?}), then the cluster's",
                options.timeout, options.deadline
            ),
        )
    };
    let _ = writeln!(
        out,
        "///
/// `options` sets this call's timeout, deadline and retries ({defaults}).
pub async fn {name}(&self, request: {input}, options: &{RT}::CallOptions) -> ::std::result::Result<{output}, {RT}::CallError> {{
    {RT}::call(&self.cluster, &self.identity, {kind_const}, {index}, &request, {call_options}).await
}}",
        name = m.name,
        input = m.input_type,
        output = m.output_type,
    );
    out
}
