/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Shims for PostgreSQL APIs that differ between major versions.
 *
 * pg_dtx is built and tested on PostgreSQL 15, 17 and 18.  The other
 * version-specific calls (shmem_request_hook, MarkGUCPrefixReserved, and
 * for 16+/17+/18+ object_aclcheck, CreateWaitEventSet's resource owner,
 * MyProcNumber, named wait events, RelationGetPrimaryKeyIndex,
 * pg_noreturn; libpq's non-blocking cancel by LIBPQ_HAS_ASYNC_CANCEL) are
 * guarded where they are made; gid.c's nonce needs common/pg_prng.h (15+)
 * and is not.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_COMPAT_H
#define DTX_COMPAT_H

#include "fmgr.h"
#include "funcapi.h"

#if PG_VERSION_NUM >= 150000

/* 15+: the materialising set-returning function setup of funcapi.h */
#define DtxInitMaterializedSRF(fcinfo, flags) InitMaterializedSRF(fcinfo, flags)

#else

#include "miscadmin.h"
#include "utils/tuplestore.h"

#ifndef MAT_SRF_USE_EXPECTED_DESC
#define MAT_SRF_USE_EXPECTED_DESC	0x01
#endif

/*
 * DtxInitMaterializedSRF
 *		Before 15: what InitMaterializedSRF does (without MAT_SRF_BLESS):
 *		checks that the caller accepts a materialised set, and sets up its
 *		tuple store and descriptor in the per-query memory context.
 */
static inline void
DtxInitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if ((flags & MAT_SRF_USE_EXPECTED_DESC) != 0)
		tupdesc = CreateTupleDescCopy(rsinfo->expectedDesc);
	else if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);
}

#endif							/* PG_VERSION_NUM >= 150000 */

#endif							/* DTX_COMPAT_H */
