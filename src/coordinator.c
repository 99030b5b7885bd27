/*-------------------------------------------------------------------------
 *
 * coordinator.c
 *	  This server's identity as a coordinator: the id that its global ids
 *	  carry, and the hold that keeps a copy of another coordinator from
 *	  acting on that coordinator's transactions.
 *
 * The coordinator id is one per cluster.  It is the system identifier,
 * unless the file DTX_COORDINATOR_ID_FILE in the data directory holds
 * another one (written by dtx.set_coordinator_id).  It is read at every use
 * (a commit that prepares, a resolver pass): no backend keeps an old id.
 *
 * A copy of a coordinator's data directory (pg_basebackup, a point-in-time
 * restore) starts with the origin's id and the origin's decisions.  Should
 * it prepare or resolve under that id, it would finish the origin's
 * transactions from a stale copy of the decisions, or have its own finished
 * by the origin.  So, at postmaster start with shared_preload_libraries, a
 * data directory started from a base backup (backup_label) or for targeted
 * recovery (recovery.signal), and not as a standby (standby.signal), is
 * held: DTX_HOLD_FILE is written, and until an operator lifts it the server
 * neither commits distributed transactions that prepare nor runs resolver
 * passes.  The operator says what the server is:
 *	- dtx.set_coordinator_id(n): a new coordinator with its own id; the
 *	  decisions it inherited carry the origin's id and are never acted on;
 *	- dtx.confirm_successor(): it replaces the server it was copied from and
 *	  finishes that server's transactions.
 * A standby is never held: promoted, it goes on with its primary's id and
 * finishes its primary's transactions, which is what a failover needs.  The
 * id can change only while held, that is before the server ever acted as a
 * coordinator, so no prepared transaction or decision of an older id of the
 * server itself can exist.
 *
 * Both files are written durably (write, fsync, rename, fsync of the
 * directory) and copied with the data directory; neither is WAL-logged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/file_perm.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"

#include "coordinator.h"
#include "shared_state.h"

/* Longest text either file holds. */
#define DTX_STATE_FILE_MAX 512

/*
 * state_path
 *		The absolute path of one of pg_dtx's files in the data directory.
 */
static char *
state_path(const char *name)
{
	return psprintf("%s/%s", DataDir, name);
}

/*
 * fsync_data_dir
 *		Makes a rename or unlink in the data directory durable.
 */
static void
fsync_data_dir(void)
{
	int			fd = open(DataDir, O_RDONLY, 0);

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open directory \"%s\": %m", DataDir)));
	if (fsync(fd) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync directory \"%s\": %m", DataDir)));
	}
	close(fd);
}

/*
 * write_state_file
 *		Replaces the file name of the data directory with content, durably:
 *		a crash leaves either the old file or the new one.
 */
static void
write_state_file(const char *name, const char *content)
{
	char	   *path = state_path(name);
	char	   *tmp = psprintf("%s.tmp", path);
	size_t		len = strlen(content);
	int			fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, pg_file_create_mode);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, content, len) != (ssize_t) len || fsync(fd) != 0)
	{
		int			save_errno = errno ? errno : ENOSPC;

		close(fd);
		unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", tmp, path)));
	fsync_data_dir();
}

/*
 * remove_state_file
 *		Removes the file name of the data directory, durably.
 */
static void
remove_state_file(const char *name)
{
	char	   *path = state_path(name);

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
	fsync_data_dir();
}

/*
 * read_state_file
 *		The content of the file name of the data directory, or NULL when it
 *		does not exist.  In a backend only (fd.c).
 */
static char *
read_state_file(const char *name)
{
	char	   *path = state_path(name);
	char	   *buf = palloc0(DTX_STATE_FILE_MAX + 1);
	ssize_t		n;
	int			fd;

	/* through fd.c, which closes cached files when descriptors run short */
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	}
	n = read(fd, buf, DTX_STATE_FILE_MAX);
	if (n < 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	}
	CloseTransientFile(fd);
	return buf;
}

/*
 * file_exists
 *		Whether the file name exists in the data directory.
 */
static bool
file_exists(const char *name)
{
	struct stat st;

	return stat(state_path(name), &st) == 0;
}

/*
 * DtxCoordinatorInit
 *		At postmaster start (shared_preload_libraries): holds the server when
 *		its data directory is a copy started as a primary.  Runs before the
 *		startup process reads (and renames) backup_label.
 */
void
DtxCoordinatorInit(void)
{
	const char *reason;

	if (!process_shared_preload_libraries_in_progress || IsUnderPostmaster ||
		IsBinaryUpgrade)
		return;
	if (file_exists("standby.signal") || file_exists(DTX_HOLD_FILE))
		return;
	if (file_exists("backup_label"))
		reason = "it was started from a base backup";
	else if (file_exists("recovery.signal"))
		reason = "it was started for targeted recovery (recovery.signal)";
	else
		return;

	write_state_file(DTX_HOLD_FILE, reason);
	ereport(WARNING,
			(errmsg("pg_dtx: this server is held: %s, not as a standby", reason),
			 errdetail("It may be a copy of another coordinator. Until an operator lifts the hold, it neither commits distributed transactions that need two-phase commit nor resolves in-doubt transactions."),
			 errhint("If this server is a separate coordinator, run SELECT dtx.set_coordinator_id(<new id>); if it replaces the server it was copied from, run SELECT dtx.confirm_successor().")));
}

/*
 * DtxCoordinatorId
 *		The id that this server's global ids carry: the content of
 *		DTX_COORDINATOR_ID_FILE, else the system identifier.  Read at every
 *		call, so that a change is seen at once.
 */
uint64
DtxCoordinatorId(void)
{
	char	   *text = read_state_file(DTX_COORDINATOR_ID_FILE);
	uint64		id;
	char	   *end;

	if (text == NULL)
		return GetSystemIdentifier();
	errno = 0;
	id = strtou64(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno != 0 || end == text || *end != '\0' || id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" does not hold a valid coordinator id",
						state_path(DTX_COORDINATOR_ID_FILE)),
				 errhint("It holds one positive decimal number, written by dtx.set_coordinator_id().")));
	pfree(text);
	return id;
}

/*
 * DtxCoordinatorHold
 *		Why this server is held, or NULL when it is not.
 */
char *
DtxCoordinatorHold(void)
{
	return read_state_file(DTX_HOLD_FILE);
}

/*
 * DtxCoordinatorIdToAct
 *		The coordinator id, for work that acts on prepared transactions:
 *		"commit" (a commit that prepares) or "resolve" (a resolver pass).
 *		Raises when the server is held.
 */
uint64
DtxCoordinatorIdToAct(const char *what)
{
	char	   *reason = DtxCoordinatorHold();

	if (reason != NULL)
	{
		bool		resolving = strcmp(what, "resolve") == 0;

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 resolving ?
				 errmsg("cannot resolve distributed transactions while this server is held") :
				 errmsg("cannot commit a distributed transaction while this server is held"),
				 errdetail("pg_dtx held this server at start-up because %s, not as a standby: it may be a copy of another coordinator.",
						   reason),
				 errhint("If this server is a separate coordinator, run SELECT dtx.set_coordinator_id(<new id>); if it replaces the server it was copied from, run SELECT dtx.confirm_successor().")));
	}
	return DtxCoordinatorId();
}

/*
 * dtx_coordinator_id_sql
 *		SQL: dtx.coordinator_id() returns this server's coordinator id.
 */
PG_FUNCTION_INFO_V1(dtx_coordinator_id_sql);
Datum
dtx_coordinator_id_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) DtxCoordinatorId());
}

/*
 * dtx_coordinator_hold
 *		SQL: dtx.coordinator_hold() returns why this server is held, or NULL.
 */
PG_FUNCTION_INFO_V1(dtx_coordinator_hold);
Datum
dtx_coordinator_hold(PG_FUNCTION_ARGS)
{
	char	   *reason = DtxCoordinatorHold();

	if (reason == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(reason));
}

/*
 * require_superuser
 *		Raises unless the current user is a superuser.
 */
static void
require_superuser(void)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser can change the coordinator id or lift the hold")));
}

/*
 * dtx_set_coordinator_id
 *		SQL: dtx.set_coordinator_id(new_id) makes a held server a coordinator
 *		of its own, with the id new_id, and lifts the hold.  Superuser only;
 *		refused on a server that is not held.  Takes effect at once, for the
 *		whole cluster, whether or not the calling transaction commits.
 */
PG_FUNCTION_INFO_V1(dtx_set_coordinator_id);
Datum
dtx_set_coordinator_id(PG_FUNCTION_ARGS)
{
	int64		new_id = PG_GETARG_INT64(0);
	uint64		old_id;

	require_superuser();
	if (DtxCoordinatorHold() == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the coordinator id can only be changed while this server is held"),
				 errdetail("Prepared transactions and decisions of the current id would be left to nobody."),
				 errhint("A copy of a coordinator is held at its first start; give it its id then.")));
	if (new_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a coordinator id must be a positive number")));
	old_id = DtxCoordinatorId();
	if ((uint64) new_id == old_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%" PRId64 " is the id of the coordinator this server was copied from", new_id),
				 errhint("To take over that coordinator's transactions, run SELECT dtx.confirm_successor() instead.")));

	write_state_file(DTX_COORDINATOR_ID_FILE, psprintf("%" PRId64 "\n", new_id));
	remove_state_file(DTX_HOLD_FILE);
	ereport(LOG,
			(errmsg("pg_dtx: the coordinator id of this server is now %" PRId64 " (was %" PRIu64 "); the hold is lifted",
					new_id, old_id)));
	DtxResolverWake();
	PG_RETURN_VOID();
}

/*
 * dtx_confirm_successor
 *		SQL: dtx.confirm_successor() lifts the hold of a server that replaces
 *		the coordinator it was copied from: it keeps that coordinator's id
 *		and finishes its transactions.  Superuser only.
 */
PG_FUNCTION_INFO_V1(dtx_confirm_successor);
Datum
dtx_confirm_successor(PG_FUNCTION_ARGS)
{
	require_superuser();
	if (DtxCoordinatorHold() == NULL)
	{
		ereport(NOTICE,
				(errmsg("this server is not held")));
		PG_RETURN_VOID();
	}
	remove_state_file(DTX_HOLD_FILE);
	ereport(LOG,
			(errmsg("pg_dtx: the hold is lifted; this server goes on as coordinator %" PRIu64,
					DtxCoordinatorId())));
	DtxResolverWake();
	PG_RETURN_VOID();
}
