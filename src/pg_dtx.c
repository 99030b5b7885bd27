/*-------------------------------------------------------------------------
 *
 * pg_dtx.c
 *	  Entry point of the pg_dtx extension: atomic transactions across
 *	  PostgreSQL servers with two-phase commit.
 *
 * This file owns nothing but the module's initialisation: each subsystem
 * registers its own settings, callbacks and hooks from its *Init function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "connection.h"
#include "coordinator.h"
#include "ddl_guard.h"
#include "deadlock.h"
#include "fdw_guard.h"
#include "identity.h"
#include "launcher.h"
#include "remote_xact.h"
#include "resolver.h"
#include "shared_state.h"
#include "stats.h"
#include "stmt_cache.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init
 *		Called when the library is loaded, at server start with
 *		shared_preload_libraries or in a backend at first use.
 */
void
_PG_init(void)
{
	DtxCoordinatorInit();
	DtxSharedStateInit();
	DtxIdentityInit();
	DtxConnectionInit();
	DtxStmtCacheInit();
	DtxDeadlockInit();
	DtxRemoteXactInit();
	DtxFdwGuardInit();
	DtxResolverInit();
	DtxLauncherInit();
	DtxDdlGuardInit();
	DtxStatsInit();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("dtx");
#else
	EmitWarningsOnPlaceholders("dtx");
#endif
}
