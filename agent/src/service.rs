//! The `bootwave.v1.BootwaveService` handlers: translate, delegate to the
//! [`Store`], push to the data planes.

use std::ops::Bound;
use std::sync::Arc;

use bootwave_proto::convert::{HostSpec, ProfileSpec, State, SubnetSpec, mac_field, net_field};
use bootwave_proto::v1::bootwave_service_server::BootwaveService;
use bootwave_proto::v1::{self, ChangeReply};
use bootwave_protocol::config::DEFAULT_PROFILE;
use tonic::{Request, Response, Status, Streaming};

use crate::events::Events;
use crate::events::last_seen::DEFAULT_CAPACITY;
use crate::push::Dataplanes;
use crate::store::{Change, Snapshot, Store, StoreError};
use crate::wave::{self, Waves};

/// Page size of `ListHosts` when the caller gives none, and its ceiling.
const DEFAULT_PAGE: usize = 1000;
/// Most hosts one `ImportHosts` stream may carry.
const MAX_IMPORT: usize = 1 << 20;

/// How often running waves are checked for their timeout.
const WAVE_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// The agent's API handlers.
#[derive(Debug, Clone)]
pub struct Agent {
    store: Arc<Store>,
    dataplanes: Arc<Dataplanes>,
    events: Arc<Events>,
    waves: Arc<Waves>,
    /// Set when the server shuts down: ends the streams of every watch.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Agent {
    /// Handlers over `store`, pushing to `dataplanes`.
    pub fn new(store: Arc<Store>, dataplanes: Arc<Dataplanes>) -> Self {
        let waves = Arc::new(Waves::new());
        let events = Arc::new(Events::new(waves.clone(), DEFAULT_CAPACITY));
        Self {
            store,
            dataplanes,
            events,
            waves,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Completes when `shutdown` does, after ending every open watch stream
    /// (`WatchEvents`, `WatchWave`), which a graceful shutdown would
    /// otherwise wait for forever.
    pub fn close_on<F>(&self, shutdown: F) -> impl Future<Output = ()> + Send + use<F>
    where
        F: Future<Output = ()> + Send,
    {
        let closing = self.closing.clone();
        async move {
            shutdown.await;
            closing.send_replace(true);
        }
    }

    /// Starts the background tasks of boot events and waves: one follower
    /// of `WatchEvents` per data plane, and the wave timeout check. The
    /// caller aborts them at shutdown.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .dataplanes
            .clients()
            .into_iter()
            .map(|(endpoint, client)| {
                tokio::spawn(crate::events::fanin::follow(
                    endpoint,
                    client,
                    self.events.clone(),
                ))
            })
            .collect();
        let waves = self.waves.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(WAVE_TICK);
            loop {
                tick.tick().await;
                waves.tick(std::time::Instant::now());
            }
        }));
        tasks
    }

    /// The boot event hub.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// The reboot waves (their [`Waves::stage_counts`] feed metrics).
    pub fn waves(&self) -> &Arc<Waves> {
        &self.waves
    }

    /// Commits `change` durably, then pushes the new generation to every
    /// data plane and waits for their acknowledgements.
    async fn commit(&self, change: Change) -> Result<Response<ChangeReply>, Status> {
        let store = self.store.clone();
        let started = std::time::Instant::now();
        let snapshot = tokio::task::spawn_blocking(move || store.commit(change))
            .await
            .map_err(|e| Status::internal(format!("commit task: {e}")))?
            .map_err(store_status)?;
        let committed = started.elapsed();
        let lagging = self.dataplanes.push(&self.store, snapshot.generation).await;
        tracing::info!(
            generation = snapshot.generation,
            hosts = snapshot.state.hosts.len(),
            commit_ms = committed.as_millis(),
            push_ms = (started.elapsed() - committed).as_millis(),
            lagging = lagging.len(),
            "change committed and pushed"
        );
        Ok(Response::new(ChangeReply {
            generation: snapshot.generation,
            lagging,
        }))
    }

    fn snapshot(&self) -> Snapshot {
        self.store.snapshot()
    }

    /// A host refused by an agent that holds no subnet yet (a fresh state)
    /// says what comes first.
    fn hint_first_steps(
        &self,
        result: Result<Response<ChangeReply>, Status>,
    ) -> Result<Response<ChangeReply>, Status> {
        result.map_err(|status| {
            if status.code() == tonic::Code::InvalidArgument
                && self.snapshot().state.subnets.is_empty()
            {
                Status::invalid_argument(format!(
                    "{}; this agent holds no subnet yet: declare one first (`bootwave subnet add --network CIDR …`) or give it a whole state (`bootwave apply FILE`, `bootwave import dhcpd.conf`)",
                    status.message()
                ))
            } else {
                status
            }
        })
    }
}

/// The gRPC status of a refused change.
fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(e) => Status::invalid_argument(e.to_string()),
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        e @ StoreError::Conflict { .. } => Status::failed_precondition(e.to_string()),
        e => {
            tracing::error!("{e}");
            Status::internal(e.to_string())
        }
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("{field}: missing")))
}

#[tonic::async_trait]
impl BootwaveService for Agent {
    async fn put_host(
        &self,
        request: Request<v1::PutHostRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let host = required(request.into_inner().host, "host")?;
        let host = HostSpec::try_from(host).map_err(|e| e.within("host"))?;
        let result = self.commit(Change::PutHosts(vec![host])).await;
        self.hint_first_steps(result)
    }

    async fn delete_host(
        &self,
        request: Request<v1::DeleteHostRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let mac = mac_field("mac", &request.into_inner().mac)?;
        self.commit(Change::DeleteHost(mac)).await
    }

    async fn get_host(
        &self,
        request: Request<v1::GetHostRequest>,
    ) -> Result<Response<v1::Host>, Status> {
        let text = request.into_inner().mac;
        let mac = mac_field("mac", &text)?;
        let snapshot = self.snapshot();
        let host = snapshot
            .state
            .hosts
            .get(&mac)
            .ok_or_else(|| Status::not_found(format!("host {text} not found")))?;
        Ok(Response::new(host.into()))
    }

    async fn list_hosts(
        &self,
        request: Request<v1::ListHostsRequest>,
    ) -> Result<Response<v1::ListHostsReply>, Status> {
        let r = request.into_inner();
        let subnet = match r.subnet.as_str() {
            "" => None,
            text => Some(net_field("subnet", text)?),
        };
        let start = match r.page_token.as_str() {
            "" => Bound::Unbounded,
            token => Bound::Excluded(mac_field("page_token", token).map_err(|_| {
                Status::invalid_argument("page_token: not a token of this listing")
            })?),
        };
        let page = match r.page_size {
            0 => DEFAULT_PAGE,
            n => usize::try_from(n).unwrap_or(DEFAULT_PAGE).min(DEFAULT_PAGE),
        };
        let snapshot = self.snapshot();
        let state = &snapshot.state;
        let mut matching = state
            .hosts
            .range((start, Bound::Unbounded))
            .map(|(_, h)| h)
            .filter(|h| r.labels.iter().all(|(k, v)| h.labels.get(k) == Some(v)))
            .filter(|h| {
                r.profile.is_empty() || h.profile.as_deref().unwrap_or(DEFAULT_PROFILE) == r.profile
            })
            .filter(|h| subnet.is_none() || state.host_subnet(h).map(|s| s.net) == subnet);
        let hosts: Vec<&HostSpec> = matching.by_ref().take(page).collect();
        let next_page_token = match (matching.next(), hosts.last()) {
            (Some(_), Some(last)) => bootwave_protocol::config::format_mac(&last.mac),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListHostsReply {
            hosts: hosts.into_iter().map(Into::into).collect(),
            next_page_token,
            generation: snapshot.generation,
        }))
    }

    async fn import_hosts(
        &self,
        request: Request<Streaming<v1::Host>>,
    ) -> Result<Response<ChangeReply>, Status> {
        let mut stream = request.into_inner();
        let started = std::time::Instant::now();
        let mut hosts = Vec::new();
        while let Some(host) = stream.message().await? {
            if hosts.len() == MAX_IMPORT {
                return Err(Status::resource_exhausted(format!(
                    "more than {MAX_IMPORT} hosts in one import"
                )));
            }
            let n = hosts.len();
            hosts.push(HostSpec::try_from(host).map_err(|e| e.within(&format!("hosts[{n}]")))?);
        }
        tracing::info!(
            hosts = hosts.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "import received"
        );
        let result = self.commit(Change::PutHosts(hosts)).await;
        self.hint_first_steps(result)
    }

    async fn put_subnet(
        &self,
        request: Request<v1::PutSubnetRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let subnet = required(request.into_inner().subnet, "subnet")?;
        let subnet = SubnetSpec::try_from(subnet).map_err(|e| e.within("subnet"))?;
        self.commit(Change::PutSubnet(subnet)).await
    }

    async fn delete_subnet(
        &self,
        request: Request<v1::DeleteSubnetRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let network = request.into_inner().network;
        let net = net_field("network", &network)?;
        self.commit(Change::DeleteSubnet(net)).await
    }

    async fn list_subnets(
        &self,
        _request: Request<v1::ListSubnetsRequest>,
    ) -> Result<Response<v1::ListSubnetsReply>, Status> {
        let snapshot = self.snapshot();
        Ok(Response::new(v1::ListSubnetsReply {
            subnets: snapshot.state.subnets.values().map(Into::into).collect(),
            generation: snapshot.generation,
        }))
    }

    async fn put_profile(
        &self,
        request: Request<v1::PutProfileRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let profile = required(request.into_inner().profile, "profile")?;
        let profile = ProfileSpec::try_from(profile).map_err(|e| e.within("profile"))?;
        self.commit(Change::PutProfile(profile)).await
    }

    async fn delete_profile(
        &self,
        request: Request<v1::DeleteProfileRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        self.commit(Change::DeleteProfile(request.into_inner().name))
            .await
    }

    async fn list_profiles(
        &self,
        _request: Request<v1::ListProfilesRequest>,
    ) -> Result<Response<v1::ListProfilesReply>, Status> {
        let snapshot = self.snapshot();
        Ok(Response::new(v1::ListProfilesReply {
            profiles: snapshot.state.profiles.values().map(Into::into).collect(),
            generation: snapshot.generation,
        }))
    }

    async fn apply_state(
        &self,
        request: Request<v1::ApplyStateRequest>,
    ) -> Result<Response<ChangeReply>, Status> {
        let r = request.into_inner();
        let state = State::try_from(required(r.state, "state")?).map_err(|e| e.within("state"))?;
        let expected = (r.expected_generation != 0).then_some(r.expected_generation);
        self.commit(Change::Replace(state, expected)).await
    }

    async fn get_state(
        &self,
        _request: Request<v1::GetStateRequest>,
    ) -> Result<Response<v1::GetStateReply>, Status> {
        let snapshot = self.snapshot();
        Ok(Response::new(v1::GetStateReply {
            state: Some((&*snapshot.state).into()),
            generation: snapshot.generation,
        }))
    }

    async fn status(
        &self,
        _request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusReply>, Status> {
        Ok(Response::new(v1::StatusReply {
            generation: self.snapshot().generation,
            dataplanes: self.dataplanes.info().await,
            history: self.store.history().to_owned(),
        }))
    }

    async fn explain(
        &self,
        request: Request<v1::ExplainRequest>,
    ) -> Result<Response<v1::ExplainReply>, Status> {
        let mac = mac_field("mac", &request.into_inner().mac)?;
        let snapshot = self.snapshot();
        let http_port = crate::explain::common_http_port(&self.dataplanes.info().await);
        let mut reply =
            crate::explain::explain(&snapshot.state, snapshot.generation, mac, http_port);
        reply.last_seen = self.events.last_seen(&mac);
        Ok(Response::new(reply))
    }

    type WatchEventsStream = EventStream<v1::BootEvent>;

    async fn watch_events(
        &self,
        request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        crate::events::api::watch(
            &self.events,
            &request.into_inner(),
            self.closing.subscribe(),
        )
        .map(Response::new)
    }

    async fn list_leases(
        &self,
        request: Request<v1::ListLeasesRequest>,
    ) -> Result<Response<v1::ListLeasesReply>, Status> {
        let planes = self.dataplanes.clients();
        crate::events::api::list_leases(planes, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn start_wave(
        &self,
        request: Request<v1::StartWaveRequest>,
    ) -> Result<Response<v1::Wave>, Status> {
        let new = wave::api::select(&self.snapshot().state, request.into_inner())?;
        let now_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let wave = self
            .waves
            .start(new, std::time::Instant::now(), now_unix_ms)
            .map_err(wave::api::status)?;
        tracing::info!(id = %wave.id, hosts = wave.hosts.len(), "wave started");
        Ok(Response::new(wave))
    }

    type WatchWaveStream = EventStream<v1::Wave>;

    async fn watch_wave(
        &self,
        request: Request<v1::WatchWaveRequest>,
    ) -> Result<Response<Self::WatchWaveStream>, Status> {
        wave::api::watch(
            self.waves.clone(),
            &request.into_inner(),
            self.closing.subscribe(),
        )
        .map(Response::new)
    }

    async fn get_wave(
        &self,
        request: Request<v1::GetWaveRequest>,
    ) -> Result<Response<v1::Wave>, Status> {
        let wave = self.waves.get(&request.into_inner().id, true);
        wave.map(Response::new).map_err(wave::api::status)
    }

    async fn finish_wave(
        &self,
        request: Request<v1::FinishWaveRequest>,
    ) -> Result<Response<v1::Wave>, Status> {
        let id = request.into_inner().id;
        let wave = self.waves.finish(&id, std::time::Instant::now());
        wave.map(Response::new).map_err(wave::api::status)
    }

    async fn list_waves(
        &self,
        _request: Request<v1::ListWavesRequest>,
    ) -> Result<Response<v1::ListWavesReply>, Status> {
        Ok(Response::new(v1::ListWavesReply {
            waves: self.waves.list(),
        }))
    }
}

/// A server stream of `T`.
pub type EventStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;
