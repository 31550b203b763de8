//! Secrets several `serve` processes share: written once by whoever asks first, then read.

use super::PgStore;
use anyhow::Result;
use postgres::types::Type;
use zeroize::Zeroizing;

pub(super) fn shared(
    s: &mut PgStore,
    name: &str,
    fresh: &[u8; 32],
    now: i64,
) -> Result<Zeroizing<Vec<u8>>> {
    // ON CONFLICT waits for a process inserting the same name at the same moment and then
    // does nothing; the SELECT, a statement of its own under READ COMMITTED, sees its row.
    let insert = format!(
        "INSERT INTO {} (name, value, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING",
        s.q.secrets
    );
    let select = format!("SELECT value FROM {} WHERE name = $1", s.q.secrets);
    let fresh = &fresh[..];
    s.in_tx(|c, _, _| {
        c.execute_typed(
            &insert,
            &[
                (&name, Type::TEXT),
                (&fresh, Type::BYTEA),
                (&now, Type::INT8),
            ],
        )?;
        let row = c.query_typed_one(&select, &[(&name, Type::TEXT)])?;
        Ok(Zeroizing::new(row.try_get::<_, Vec<u8>>(0)?))
    })
}
