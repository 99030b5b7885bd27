/*-------------------------------------------------------------------------
 *
 * decision.c
 *	  The commit decisions of distributed transactions.
 *
 * A decision is a row of dtx.decisions inserted inside the local
 * transaction, just before its commit: the local commit record makes it
 * durable, so it *is* the decision.  The row is written with heap access
 * (no SPI, no snapshot) from the pre-commit callback.
 *
 * Once every participant confirmed COMMIT PREPARED, the row may go.  Nothing
 * can be written from the commit callback, so the backend remembers the
 * confirmed transactions and deletes their rows in its next transaction
 * that writes a decision, in batches; rows that a backend could not delete
 * before it exited are deleted by the resolver, which finds nothing left to
 * do for them.  Deletion tolerates a concurrent deletion by the resolver.
 *
 * With a synchronous standby, a decision counts only once that standby has
 * it: a failover before would lose it, and the promoted standby's resolver
 * would roll back what the participants had not committed yet.  So the
 * commit of a decision waits for the standby whatever the session's
 * synchronous_commit, and nobody sends COMMIT PREPARED for a decision that
 * the standby has not confirmed (DtxDecisionReplicated,
 * DtxDecisionsWaitReplicated).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/pg_type.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "decision.h"
#include "shared_state.h"


static int	delete_batch(Relation rel, const uint64 *fxids, int n);
static Relation open_decisions(LOCKMODE lockmode);

/*
 * What writing a decision needs to know of dtx.decisions, kept for the
 * backend's life instead of being looked up for every transaction: the
 * table's oid and, when its only index is the primary key on xid alone (as
 * created), that index's oid and IndexInfo, so that a decision is inserted
 * into the heap and that index directly.  Forgotten at any invalidation of
 * the table or its index, or any change of a schema.
 */
static Oid	decisions_relid = InvalidOid;
static Oid	decisions_pkey = InvalidOid;
static IndexInfo *decisions_pkey_info = NULL;
static MemoryContext decisions_cxt = NULL;
static bool decisions_stale = false;
static bool decisions_callbacks = false;

/* transactions whose participants all confirmed COMMIT PREPARED */
static uint64 confirmed[DTX_CONFIRMED_BATCH];
static int	nconfirmed = 0;
static int	ndeleting = 0;		/* the first ones, deleted by the current
								 * transaction if it commits */

/*
 * decisions_inval_rel, decisions_inval_nsp
 *		Relcache and syscache callbacks: what open_decisions knew is looked
 *		up again when dtx.decisions, its index or a schema may have changed.
 */
static void
decisions_inval_rel(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid) || relid == decisions_relid || relid == decisions_pkey)
		decisions_stale = true;
}

static void
decisions_inval_nsp(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	decisions_stale = true;
}

/*
 * open_decisions
 *		Opens dtx.decisions with lockmode; finds its oid and its primary key
 *		(see decisions_relid) when they are not known yet.  Raises when the
 *		table does not exist.
 */
static Relation
open_decisions(LOCKMODE lockmode)
{
	Relation	rel;
	List	   *indexes;

	if (!decisions_callbacks)
	{
		CacheRegisterRelcacheCallback(decisions_inval_rel, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, decisions_inval_nsp, (Datum) 0);
		decisions_callbacks = true;
	}
	if (!decisions_stale && OidIsValid(decisions_relid))
	{
		/* an invalidation taken with the lock, or a drop: look again */
		rel = try_relation_open(decisions_relid, lockmode);
		if (rel != NULL && !decisions_stale)
			return rel;
		if (rel != NULL)
			relation_close(rel, lockmode);
	}
	decisions_stale = false;
	decisions_relid = InvalidOid;
	decisions_pkey = InvalidOid;
	decisions_pkey_info = NULL;
	if (decisions_cxt != NULL)
		MemoryContextReset(decisions_cxt);

	rel = table_open(DtxTableRelid("decisions", false), lockmode);
	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) == 1 &&
#if PG_VERSION_NUM >= 180000
		linitial_oid(indexes) == RelationGetPrimaryKeyIndex(rel, false)
#else
		linitial_oid(indexes) == RelationGetPrimaryKeyIndex(rel)
#endif
		)
	{
		Relation	pkey = index_open(linitial_oid(indexes), AccessShareLock);
		MemoryContext old;
		IndexInfo  *info;

		if (decisions_cxt == NULL)
			decisions_cxt = AllocSetContextCreate(TopMemoryContext, "pg_dtx decisions",
												  ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(decisions_cxt);
		info = BuildIndexInfo(pkey);
		MemoryContextSwitchTo(old);
		if (info->ii_NumIndexAttrs == 1 && info->ii_NumIndexKeyAttrs == 1 &&
			info->ii_IndexAttrNumbers[0] == Anum_dtx_decisions_xid &&
			info->ii_Expressions == NIL && info->ii_Predicate == NIL &&
			info->ii_Unique)
		{
			decisions_pkey = RelationGetRelid(pkey);
			decisions_pkey_info = info;
		}
		index_close(pkey, AccessShareLock);
	}
	list_free(indexes);
	/* kept unless something changed meanwhile */
	if (!decisions_stale)
		decisions_relid = RelationGetRelid(rel);
	else
	{
		decisions_pkey = InvalidOid;
		decisions_pkey_info = NULL;
	}
	return rel;
}

/*
 * DtxDecisionInsert
 *		Inserts the commit decision of the current transaction, with nonce
 *		when the installed version of the table has that column; returns
 *		whether it had (false: a 1.0 table, whose global ids carry no nonce).
 */
bool
DtxDecisionInsert(FullTransactionId fxid, uint64 coordinator_id,
				  const Oid *servers, const Oid *userids, int nservers,
				  uint64 nonce)
{
	bool		with_nonce;
	Relation	rel;
	Datum		values[Natts_dtx_decisions];
	bool		nulls[Natts_dtx_decisions];
	Datum	   *elems;
	Datum	   *uelems;
	HeapTuple	tuple;
	int			i;

	rel = open_decisions(RowExclusiveLock);

	elems = palloc(sizeof(Datum) * nservers);
	uelems = palloc(sizeof(Datum) * nservers);
	for (i = 0; i < nservers; i++)
	{
		elems[i] = ObjectIdGetDatum(servers[i]);
		uelems[i] = ObjectIdGetDatum(userids[i]);
	}

	memset(nulls, false, sizeof(nulls));
	values[Anum_dtx_decisions_xid - 1] = FullTransactionIdGetDatum(fxid);
	values[Anum_dtx_decisions_coordinator - 1] = Int64GetDatum((int64) coordinator_id);
	values[Anum_dtx_decisions_servers - 1] =
		PointerGetDatum(construct_array(elems, nservers, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	values[Anum_dtx_decisions_userids - 1] =
		PointerGetDatum(construct_array(uelems, nservers, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	values[Anum_dtx_decisions_created - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[Anum_dtx_decisions_nonce - 1] = Int64GetDatum((int64) nonce);
	with_nonce = RelationGetDescr(rel)->natts >= Anum_dtx_decisions_nonce;

	/* heap_form_tuple takes as many values as the descriptor has columns */
	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	if (OidIsValid(decisions_pkey))
	{
		Relation	pkey = index_open(decisions_pkey, RowExclusiveLock);
		Datum		key = values[Anum_dtx_decisions_xid - 1];
		bool		key_null = false;

		simple_heap_insert(rel, tuple);
		index_insert(pkey, &key, &key_null, &tuple->t_self, rel,
					 UNIQUE_CHECK_YES, false, decisions_pkey_info);
		index_close(pkey, NoLock);
	}
	else
		CatalogTupleInsert(rel, tuple);
	heap_freetuple(tuple);
	table_close(rel, NoLock);
	return with_nonce;
}

/*
 * DtxDecisionConfirmed
 *		Every participant of fxid confirmed COMMIT PREPARED: its decision
 *		may go.  Queued in shared memory for the next resolver pass of the
 *		database, or remembered for the backend's next transaction that
 *		writes a decision.  Never raises: called from the commit callback.
 *		With no room anywhere it is dropped: a resolver pass finds the
 *		decision finished everywhere and deletes it.
 */
void
DtxDecisionConfirmed(FullTransactionId fxid)
{
	if (DtxConfirmedPush(fxid))
		return;
	if (nconfirmed < DTX_CONFIRMED_BATCH)
		confirmed[nconfirmed++] = U64FromFullTransactionId(fxid);
}

/*
 * DtxDecisionDelete
 *		Deletes the decision of fxid from rel (dtx.decisions opened with
 *		RowExclusiveLock), if it is there; true if this call deleted it.
 *		A concurrent deletion is not an error.
 */
bool
DtxDecisionDelete(Relation rel, FullTransactionId fxid)
{
	uint64		one = U64FromFullTransactionId(fxid);

	return delete_batch(rel, &one, 1) > 0;
}

/*
 * delete_batch
 *		Deletes the decisions of the n transactions fxids from rel
 *		(dtx.decisions opened with RowExclusiveLock) with one scan of the
 *		primary key for all of them (an array key); returns how many this
 *		call deleted.  A concurrent deletion is not an error.
 */
static int
delete_batch(Relation rel, const uint64 *fxids, int n)
{
#if PG_VERSION_NUM >= 180000
	Oid			indexoid = RelationGetPrimaryKeyIndex(rel, false);
#else
	Oid			indexoid = RelationGetPrimaryKeyIndex(rel);
#endif
	Datum	   *elems = palloc(sizeof(Datum) * n);
	ArrayType  *arr;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	int			deleted = 0;
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = FullTransactionIdGetDatum(FullTransactionIdFromU64(fxids[i]));
	arr = construct_array(elems, n, XID8OID, sizeof(uint64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);

	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyEntryInitialize(&key, SK_SEARCHARRAY, Anum_dtx_decisions_xid,
						   BTEqualStrategyNumber, InvalidOid, InvalidOid,
						   F_XID8EQ, PointerGetDatum(arr));
	scan = systable_beginscan(rel, indexoid, true, snap, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		TM_FailureData tmfd;
		TM_Result	result;

		result = heap_delete(rel, &tup->t_self, GetCurrentCommandId(true),
							 InvalidSnapshot, true, &tmfd, false);
		if (result == TM_Ok)
			deleted++;
		else if (result != TM_Deleted && result != TM_Updated && result != TM_SelfModified)
			elog(ERROR, "unexpected result %d deleting a pg_dtx decision", (int) result);
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	pfree(arr);
	pfree(elems);
	return deleted;
}

/*
 * DtxDecisionDeleteConfirmed
 *		Deletes the decisions of the transactions remembered as confirmed,
 *		once there are DTX_RETIRE_BATCH of them (every one with all);
 *		returns how many were deleted.  Called inside a transaction that
 *		writes a decision anyway.  Rows not deleted yet are harmless: a
 *		confirmed decision is finished everywhere, and a resolver pass
 *		deletes what a backend leaves when it exits.
 */
int
DtxDecisionDeleteConfirmed(bool all)
{
	Relation	rel;
	int			n;

	if (nconfirmed == 0 || (!all && nconfirmed < DTX_RETIRE_BATCH))
		return 0;
	rel = open_decisions(RowExclusiveLock);
	n = delete_batch(rel, confirmed, nconfirmed);
	table_close(rel, NoLock);
	ndeleting = nconfirmed;
	return n;
}

/*
 * DtxDecisionRetireConfirmed
 *		Deletes every confirmed decision of this database known here: those
 *		this backend remembers and those queued in shared memory.  Returns
 *		how many were deleted.  Those lost to an abort of the current
 *		transaction are found finished by a later resolver pass.
 */
int
DtxDecisionRetireConfirmed(void)
{
	uint64	   *fxids = palloc(sizeof(uint64) * DTX_CONFIRMED_SLOTS);
	int			n = DtxConfirmedTake(fxids, DTX_CONFIRMED_SLOTS);
	int			deleted = DtxDecisionDeleteConfirmed(true);

	if (n > 0)
	{
		Relation	rel = open_decisions(RowExclusiveLock);

		deleted += delete_batch(rel, fxids, n);
		table_close(rel, NoLock);
	}
	pfree(fxids);
	return deleted;
}

/*
 * DtxDecisionEndXact
 *		At the end of a transaction: the confirmed decisions it deleted are
 *		forgotten if it committed, kept for the next try if it aborted.
 *		Never raises.
 */
void
DtxDecisionEndXact(bool committed)
{
	if (committed && ndeleting > 0)
	{
		memmove(confirmed, confirmed + ndeleting,
				sizeof(uint64) * (nconfirmed - ndeleting));
		nconfirmed -= ndeleting;
	}
	ndeleting = 0;
}

/*
 * DtxDecisionRequireSyncRep
 *		Makes the current transaction's commit wait for the synchronous
 *		standby (if one is configured) to have flushed it, whatever the
 *		session's synchronous_commit: raises the setting to "on" for this
 *		transaction when it is below.
 */
void
DtxDecisionRequireSyncRep(void)
{
	if (synchronous_commit < SYNCHRONOUS_COMMIT_REMOTE_FLUSH)
		(void) set_config_option("synchronous_commit", "on",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * DtxDecisionReplicated
 *		Whether WAL up to lsn is flushed on the synchronous standby, or none
 *		is configured.  Never raises and allocates nothing: called after the
 *		local commit.
 */
bool
DtxDecisionReplicated(XLogRecPtr lsn)
{
	bool		done;
	bool		defined;

	if (max_wal_senders == 0 || WalSndCtl == NULL)
		return true;
	LWLockAcquire(SyncRepLock, LW_SHARED);
#ifdef SYNC_STANDBY_DEFINED
	/* later minor releases: known to the checkpointer, or from the setting */
	defined = (WalSndCtl->sync_standbys_status & SYNC_STANDBY_INIT) ?
		(WalSndCtl->sync_standbys_status & SYNC_STANDBY_DEFINED) != 0 :
		(SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0');
#else
	defined = WalSndCtl->sync_standbys_defined;
#endif
	done = !defined || WalSndCtl->lsn[SYNC_REP_WAIT_FLUSH] >= lsn;
	LWLockRelease(SyncRepLock);
	return done;
}

/*
 * DtxDecisionsWaitReplicated
 *		Before the resolver sends COMMIT PREPARED: waits until every
 *		decision committed so far is on the synchronous standby (if one is
 *		configured).  Raises if the wait ends without that (cancelled).
 */
void
DtxDecisionsWaitReplicated(void)
{
	XLogRecPtr	lsn = GetFlushRecPtr(NULL);

	if (DtxDecisionReplicated(lsn))
		return;
	DtxDecisionRequireSyncRep();
	SyncRepWaitForLSN(lsn, false);
	if (!DtxDecisionReplicated(lsn))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the decisions have not reached the synchronous standby"),
				 errdetail("COMMIT PREPARED is sent only for decisions the standby has: a failover would lose the others."),
				 errhint("Check the standby named in synchronous_standby_names.")));
}
