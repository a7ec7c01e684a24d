//! Live views: a table page or a query result that updates itself when a
//! table it reads gets a commit. The commits come from the server's
//! subscription endpoint (`…/tables/{t}/events`), one per table followed,
//! merged into one stream; a dropped connection resumes where it was.

use futures::stream::{LocalBoxStream, StreamExt};
use wavelake_engine::sharing::protocol::events::CommitEvent;

use crate::session::Session;

/// The commits of the shared tables among `names`, as one stream; an
/// explanation when none of them can be followed (tables on a static
/// host have no server to tell of commits).
pub async fn commits(
    session: &Session,
    names: &[String],
) -> Result<LocalBoxStream<'static, Result<CommitEvent, String>>, String> {
    let mut streams = Vec::new();
    for name in names {
        let Some(subscription) = session.subscribe(name).await? else {
            continue;
        };
        let stream = futures::stream::unfold(Some(subscription), |state| async move {
            let mut subscription = state?;
            match subscription.next().await {
                Ok(Some(commit)) => Some((Ok(commit), Some(subscription))),
                Ok(None) => None,
                Err(e) => Some((Err(crate::session::describe(e)), None)),
            }
        });
        streams.push(stream.boxed_local());
    }
    if streams.is_empty() {
        return Err(
            "Live updates need tables from a Wavelake server; these are read from a static \
             host, so reload to see changes."
                .into(),
        );
    }
    Ok(futures::stream::select_all(streams).boxed_local())
}
