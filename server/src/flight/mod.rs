//! Arrow Flight SQL (`wavelake serve --flight-listen HOST:PORT`): the same
//! statements, tokens and sandbox as `POST /api/v1/sql`, over gRPC with
//! results as Arrow record batches.
//!
//! - Statement queries and prepared statements: `GetFlightInfo` plans a
//!   query for its schema and hands out a ticket that `DoGet` runs (and
//!   streams); a statement that changes something runs at
//!   `GetFlightInfo`, once, and its ticket fetches the result. `DoPut` runs
//!   updates (the count of rows changed). Parameters bound to a prepared
//!   statement fill its `?` and `$n` placeholders as literals (the engine's
//!   `bind_parameters`) before the statement is classified and run: one
//!   row for a query, one execution per row for an update.
//! - Catalog metadata: catalogs, schemas (namespaces the token reads),
//!   tables (with their Arrow schemas), table types and SQL info.
//! - Bulk ingest (`CommandStatementIngest`, ADBC's `adbc_ingest`):
//!   appends go to the table's write buffer (the write-ahead log of
//!   `POST …/rows`), large ones straight to one commit; create and replace
//!   commit at once.
//!
//! Every call carries `authorization: Bearer <token>` (or a handshake
//! with Basic credentials whose password is the token, answered with the
//! bearer header); `x-wavelake-namespace` names the namespace unqualified
//! tables resolve in, as `namespace` does in the HTTP API.

mod catalog;
mod ingest;
mod parameters;
mod results;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::api::sql::{Kept, Recalled, Started, execute, execute_recalling, start};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use results::{Handle, ResultStore};
use wavelake_engine::Access;

/// The request header naming the namespace unqualified tables resolve in.
pub const NAMESPACE_HEADER: &str = "x-wavelake-namespace";

/// Statements prepared and not yet closed, at most, across callers.
const MAX_PREPARED: usize = 4096;

type FlightDataStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service over the server's state.
#[derive(Clone)]
pub struct FlightSql {
    state: Arc<AppState>,
    results: Arc<ResultStore>,
    prepared: Arc<std::sync::Mutex<std::collections::HashMap<String, Prepared>>>,
}

/// A prepared statement: its text and the parameters last bound to it, for
/// its owner.
#[derive(Debug, Clone)]
struct Prepared {
    owner: String,
    namespace: Option<String>,
    sql: String,
    parameters: Vec<Vec<datafusion::common::ScalarValue>>,
}

impl Prepared {
    /// The statement to run: its text with one row of parameters bound.
    fn bound(&self, row: Option<&[datafusion::common::ScalarValue]>) -> Result<String, Status> {
        match row {
            Some(values) => {
                wavelake_engine::bind_parameters(&self.sql, values).map_err(engine_status)
            }
            None if wavelake_engine::has_placeholders(&self.sql) => Err(Status::invalid_argument(
                "the prepared statement has placeholders and no parameters are bound",
            )),
            None => Ok(self.sql.clone()),
        }
    }
}

/// Serves Flight SQL on `listener` until `shutdown` resolves.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let service = FlightSql {
        state,
        results: Arc::new(ResultStore::default()),
        prepared: Arc::default(),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// An API error as a gRPC status: the code Flight clients branch on, the
/// message with Wavelake's own code in front (`[TABLE_NOT_FOUND] …`).
pub(crate) fn status(error: ApiError) -> Status {
    let message = format!("[{}] {}", error.code, error.message);
    match error.status.as_u16() {
        400 | 413 | 415 | 422 => Status::invalid_argument(message),
        401 => Status::unauthenticated(message),
        403 => Status::permission_denied(message),
        404 => Status::not_found(message),
        408 | 504 => Status::deadline_exceeded(message),
        409 => Status::aborted(message),
        429 | 503 | 507 => Status::resource_exhausted(message),
        501 => Status::unimplemented(message),
        _ => Status::internal(message),
    }
}

fn engine_status(error: wavelake_engine::Error) -> Status {
    status(ApiError::from(error))
}

/// The bearer token of a call's metadata.
fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FlightSql {
    /// The caller, from the call's bearer token.
    fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        bearer(metadata)
            .and_then(|token| self.state.tokens.authenticate(token))
            .ok_or_else(|| status(ApiError::unauthorized()))
    }

    /// A place for one more running statement of `principal`.
    fn admit(&self, principal: &Principal) -> Result<crate::admission::Admitted, Status> {
        self.state
            .admission
            .admit(&principal.id)
            .map_err(|refusal| Status::resource_exhausted(refusal.to_string()))
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
            + Duration::from_secs(self.state.config.limits.query_timeout_secs)
    }

    /// A ticket for `sql`: a query is planned (for its schema) and runs
    /// when the ticket is fetched; anything else runs now and the ticket
    /// fetches its result.
    async fn flight_info(
        &self,
        metadata: &MetadataMap,
        sql: &str,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let principal = self.principal(metadata)?;
        let namespace = namespace(metadata);
        let is_query = crate::sharing::sql::parse(sql).is_none()
            && wavelake_engine::Statement::parse(sql)
                .map(|s| s.access() == Access::Read)
                .map_err(engine_status)?;
        let (schema, handle) = if is_query {
            let schema = self
                .query_schema(&principal, namespace.as_deref(), sql)
                .await?;
            let handle = Handle::Query {
                sql: sql.to_owned(),
                namespace,
            };
            (schema, handle)
        } else {
            let _admitted = self.admit(&principal)?;
            let batches = self.run_now(&principal, namespace.as_deref(), sql).await?;
            let schema = batches
                .first()
                .map_or_else(|| Arc::new(Schema::empty()), |b| b.schema());
            let id = self.results.keep(&principal.id, schema.clone(), batches)?;
            (schema, Handle::Result { id })
        };
        let ticket = TicketStatementQuery {
            statement_handle: handle.encode()?.into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))
            .map(|info| info.with_endpoint(endpoint).with_descriptor(descriptor))
    }

    /// The schema of the query `sql`, planned in the caller's session.
    async fn query_schema(
        &self,
        principal: &Principal,
        namespace: Option<&str>,
        sql: &str,
    ) -> Result<arrow::datatypes::SchemaRef, Status> {
        match start(&self.state, principal, namespace, sql)
            .await
            .map_err(status)?
        {
            Started::Answered(batch) => Ok(batch.schema()),
            Started::Session(engine, statement) => {
                let frame = engine.execute(statement).await.map_err(engine_status)?;
                Ok(Arc::new(frame.schema().as_arrow().clone()))
            }
        }
    }

    /// Runs `sql` to the end and returns its rows (statements that change
    /// something: their results are a row or a few).
    async fn run_now(
        &self,
        principal: &Principal,
        namespace: Option<&str>,
        sql: &str,
    ) -> Result<Vec<arrow::array::RecordBatch>, Status> {
        let work = async {
            match start(&self.state, principal, namespace, sql)
                .await
                .map_err(status)?
            {
                Started::Answered(batch) => Ok(vec![batch]),
                Started::Session(engine, statement) => {
                    let (frame, _) = execute(&self.state, &engine, statement)
                        .await
                        .map_err(engine_status)?;
                    frame.collect().await.map_err(|e| engine_status(e.into()))
                }
            }
        };
        tokio::time::timeout_at(self.deadline(), work)
            .await
            .map_err(|_| timed_out(self.state.config.limits.query_timeout_secs))?
    }

    /// Streams the rows of the query `sql` as Flight data.
    async fn stream_query(
        &self,
        principal: &Principal,
        namespace: Option<&str>,
        sql: &str,
    ) -> Result<FlightDataStream, Status> {
        let admitted = self.admit(principal)?;
        let deadline = self.deadline();
        let limit = self.state.config.limits.query_timeout_secs;
        let planned = async {
            match start(&self.state, principal, namespace, sql)
                .await
                .map_err(status)?
            {
                Started::Answered(batch) => Ok::<_, Status>(results::batches_stream(vec![batch])),
                Started::Session(engine, statement) => {
                    let recalled = execute_recalling(&self.state, &engine, statement, sql)
                        .await
                        .map_err(engine_status)?;
                    let (frame, kept) = match recalled {
                        Recalled::Hit(result) => {
                            let schema = result.schema.clone();
                            let rows = result.into_stream();
                            return Ok((schema, rows.map_err(|e| engine_status(e.into())).boxed()));
                        }
                        Recalled::Run { frame, kept, .. } => (*frame, kept),
                    };
                    let schema = Arc::new(frame.schema().as_arrow().clone());
                    let mut rows = frame
                        .execute_stream()
                        .await
                        .map_err(|e| engine_status(e.into()))?;
                    if let (Kept::Miss(query), Some(cache)) = (kept, &self.state.result_cache) {
                        rows = cache.keep_streamed(query, rows);
                    }
                    Ok((schema, rows.map_err(|e| engine_status(e.into())).boxed()))
                }
            }
        };
        let (schema, rows) = tokio::time::timeout_at(deadline, planned)
            .await
            .map_err(|_| timed_out(limit))??;
        Ok(results::encode(
            schema,
            results::until(rows, deadline, limit, admitted),
        ))
    }

    /// Runs an update (`DoPut`) and returns the rows it changed (`-1` when
    /// the statement says no count).
    async fn update(&self, metadata: &MetadataMap, sql: &str) -> Result<i64, Status> {
        let principal = self.principal(metadata)?;
        let _admitted = self.admit(&principal)?;
        let batches = self
            .run_now(&principal, namespace(metadata).as_deref(), sql)
            .await?;
        Ok(results::count(&batches))
    }

    /// Binds `parameters` to the prepared statement `handle` of `principal`.
    fn bind(
        &self,
        principal: &Principal,
        handle: &[u8],
        parameters: Vec<Vec<datafusion::common::ScalarValue>>,
    ) -> Result<(), Status> {
        self.prepared(principal, handle)?;
        let key = String::from_utf8_lossy(handle).into_owned();
        let mut prepared = self
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements are unavailable"))?;
        if let Some(statement) = prepared.get_mut(&key) {
            statement.parameters = parameters;
        }
        Ok(())
    }

    /// The prepared statement `handle`, if `principal` prepared it.
    fn prepared(&self, principal: &Principal, handle: &[u8]) -> Result<Prepared, Status> {
        let key = String::from_utf8_lossy(handle).into_owned();
        let prepared = self
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements are unavailable"))?
            .get(&key)
            .cloned();
        prepared
            .filter(|p| p.owner == principal.id)
            .ok_or_else(|| Status::not_found("no such prepared statement (closed, or not yours)"))
    }
}

/// The namespace the call names in [`NAMESPACE_HEADER`], if any.
fn namespace(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get(NAMESPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn timed_out(limit: u64) -> Status {
    status(ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "QUERY_TIMEOUT",
        format!("the statement ran longer than the limit of {limit} s"),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // Basic credentials whose password is a token (the user name is
        // not checked), or a bearer token: answered with the bearer
        // header every later call sends.
        let token = match bearer(request.metadata()) {
            Some(token) => token.to_owned(),
            None => basic_password(request.metadata())
                .ok_or_else(|| status(ApiError::unauthorized()))?,
        };
        if self.state.tokens.authenticate(&token).is_none() {
            return Err(status(ApiError::unauthorized()));
        }
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (metadata, _, descriptor) = request.into_parts();
        let info = self
            .flight_info(&metadata, &query.query, descriptor)
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (metadata, _, descriptor) = request.into_parts();
        let principal = self.principal(&metadata)?;
        let prepared = self.prepared(&principal, &query.prepared_statement_handle)?;
        let mut metadata = metadata;
        if let Some(namespace) = &prepared.namespace
            && let Ok(value) = namespace.parse()
        {
            metadata.insert(NAMESPACE_HEADER, value);
        }
        let sql = match prepared.parameters.as_slice() {
            [] => prepared.bound(None)?,
            [row] => prepared.bound(Some(row))?,
            rows => {
                return Err(Status::invalid_argument(format!(
                    "a query runs with one row of parameters; {} are bound",
                    rows.len()
                )));
            }
        };
        let info = self.flight_info(&metadata, &sql, descriptor).await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        metadata_info(query.as_any(), &schema, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query.as_any(), &schema, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query.as_any(), &schema, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        metadata_info(query.as_any(), &schema, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder(catalog::sql_info()?).schema();
        metadata_info(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let principal = self.principal(request.metadata())?;
        let stream = match Handle::decode(&ticket.statement_handle)? {
            Handle::Query { sql, namespace } => {
                self.stream_query(&principal, namespace.as_deref(), &sql)
                    .await?
            }
            Handle::Result { id } => {
                let (schema, batches) = self.results.take(&principal.id, &id)?;
                results::encode(schema, results::batches_stream(batches).1)
            }
        };
        Ok(Response::new(stream))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.principal(request.metadata())?;
        let batch = catalog::catalogs(query)?;
        Ok(Response::new(results::encode_batch(batch)))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let principal = self.principal(request.metadata())?;
        let batch = catalog::schemas(&self.state, &principal, query).await?;
        Ok(Response::new(results::encode_batch(batch)))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let principal = self.principal(request.metadata())?;
        let batch = catalog::tables(&self.state, &principal, query).await?;
        Ok(Response::new(results::encode_batch(batch)))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.principal(request.metadata())?;
        let batch = catalog::table_types(query)?;
        Ok(Response::new(results::encode_batch(batch)))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.principal(request.metadata())?;
        let batch = query
            .into_builder(catalog::sql_info()?)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(results::encode_batch(batch)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.update(request.metadata(), &command.query).await
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (metadata, _, stream) = request.into_parts();
        let principal = self.principal(&metadata)?;
        let _admitted = self.admit(&principal)?;
        let namespace = namespace(&metadata);
        ingest::ingest(&self.state, &principal, namespace, command, stream).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let (metadata, _, stream) = request.into_parts();
        let principal = self.principal(&metadata)?;
        let parameters = parameters::read(stream).await?;
        self.bind(&principal, &query.prepared_statement_handle, parameters)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (metadata, _, stream) = request.into_parts();
        let principal = self.principal(&metadata)?;
        let prepared = self.prepared(&principal, &query.prepared_statement_handle)?;
        let mut metadata = metadata;
        if let Some(namespace) = &prepared.namespace
            && let Ok(value) = namespace.parse()
        {
            metadata.insert(NAMESPACE_HEADER, value);
        }
        // Each row of parameters is one execution (a batch of INSERTs
        // from `executemany`); the count is their sum. Statements bound
        // before any runs, so a bad row runs none.
        let rows = parameters::read(stream).await?;
        let statements = if rows.is_empty() {
            vec![prepared.bound(None)?]
        } else {
            rows.iter()
                .map(|row| prepared.bound(Some(row)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut changed = 0;
        for sql in &statements {
            let count = self.update(&metadata, sql).await?;
            changed = if count < 0 || changed < 0 {
                -1
            } else {
                changed + count
            };
        }
        Ok(changed)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let principal = self.principal(request.metadata())?;
        let namespace = namespace(request.metadata());
        let is_query = crate::sharing::sql::parse(&query.query).is_none()
            && wavelake_engine::Statement::parse(&query.query)
                .map(|s| s.access() == Access::Read)
                .map_err(engine_status)?;
        // A query with placeholders is planned once its parameters are
        // bound; its schema is then in the FlightInfo.
        let schema = if is_query && !wavelake_engine::has_placeholders(&query.query) {
            self.query_schema(&principal, namespace.as_deref(), &query.query)
                .await?
        } else {
            Arc::new(Schema::empty())
        };
        let handle = results::random_id()?;
        {
            let mut prepared = self
                .prepared
                .lock()
                .map_err(|_| Status::internal("prepared statements are unavailable"))?;
            if prepared.len() >= MAX_PREPARED {
                return Err(Status::resource_exhausted(format!(
                    "the server holds its limit of {MAX_PREPARED} prepared statements; close some"
                )));
            }
            prepared.insert(
                handle.clone(),
                Prepared {
                    owner: principal.id.clone(),
                    namespace,
                    sql: query.query,
                    parameters: Vec::new(),
                },
            );
        }
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(request.metadata())?;
        self.prepared(&principal, &query.prepared_statement_handle)?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        if let Ok(mut prepared) = self.prepared.lock() {
            prepared.remove(&key);
        }
        Ok(())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A `FlightInfo` whose one ticket is the metadata command itself.
fn metadata_info(
    command: Any,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The password of Basic credentials in the call's metadata.
fn basic_password(metadata: &MetadataMap) -> Option<String> {
    use base64::Engine;
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}
