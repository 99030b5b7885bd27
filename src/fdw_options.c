/*-------------------------------------------------------------------------
 *
 * fdw_options.c
 *	  The foreign-data wrapper dtx, and everything that turns a server name
 *	  into checked libpq connection parameters.
 *
 * Servers of the wrapper dtx take libpq connection options; user mappings
 * take user, password and password_required.  Servers of postgres_fdw are
 * accepted as participants too: their non-libpq options are ignored.
 *
 * A non-superuser must connect with a password from the user mapping, so
 * that the coordinator's own operating-system identity (peer or trust
 * authentication) is never lent to them; a superuser may waive this per
 * mapping with password_required 'false'.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "fdw_options.h"

/* the wrappers whose servers can be participants */
#define DTX_FDW_NAME "dtx"
#define POSTGRES_FDW_NAME "postgres_fdw"

static PQconninfoOption *libpq_options = NULL;

/*
 * Lookups kept for the backend's life instead of being made for every
 * statement, both emptied at any change of a server, a user mapping or a
 * wrapper (syscache callbacks, lookups_inval), so that a server or mapping
 * dropped, renamed or changed is looked up and checked again:
 *	- resolved_servers: the servers that DtxResolveServer found and checked,
 *	  by name and user: their oid (the privilege to use the server is checked
 *	  on every call: role memberships change no server);
 *	- mappings: the user mapping that a user's connections to a server use,
 *	  and the server's name (DtxMappingFor).
 */
typedef struct ResolvedKey
{
	NameData	servername;
	Oid			userid;
} ResolvedKey;

typedef struct ResolvedServer
{
	ResolvedKey key;
	Oid			serverid;
} ResolvedServer;

typedef struct MappingKey
{
	Oid			serverid;
	Oid			userid;
} MappingKey;

typedef struct MappingEntry
{
	MappingKey	key;
	Oid			umid;
	NameData	servername;
} MappingEntry;

static HTAB *resolved_servers = NULL;
static HTAB *mappings = NULL;
static bool lookups_stale = false;
static bool lookups_callbacks = false;

/*
 * libpq_option_allowed
 *		Whether a libpq option may be given in a server's options.
 *
 * user and password belong to user mappings; pg_dtx sets application_name
 * and client_encoding itself; replication connections and debug options
 * make no sense here.
 */
static bool
libpq_option_allowed(const PQconninfoOption *opt)
{
	return strcmp(opt->keyword, "user") != 0 &&
		strcmp(opt->keyword, "password") != 0 &&
		strcmp(opt->keyword, "sslpassword") != 0 &&
		strcmp(opt->keyword, "application_name") != 0 &&
		strcmp(opt->keyword, "fallback_application_name") != 0 &&
		strcmp(opt->keyword, "client_encoding") != 0 &&
		strcmp(opt->keyword, "replication") != 0 &&
		strchr(opt->dispchar, 'D') == NULL;
}

/*
 * load_libpq_options
 *		Reads libpq's list of connection options once per backend.
 */
static void
load_libpq_options(void)
{
	if (libpq_options != NULL)
		return;
	libpq_options = PQconndefaults();
	if (libpq_options == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not get libpq's default connection options.")));
}

/*
 * is_server_option
 *		Whether name is a libpq option that a server may carry.
 */
static bool
is_server_option(const char *name)
{
	PQconninfoOption *opt;

	load_libpq_options();
	for (opt = libpq_options; opt->keyword; opt++)
		if (strcmp(opt->keyword, name) == 0)
			return libpq_option_allowed(opt);
	return false;
}

static const char *const mapping_options[] = {"user", "password", "password_required", NULL};

/*
 * is_mapping_option
 *		Whether name is an option that a user mapping may carry.
 */
static bool
is_mapping_option(const char *name)
{
	int			i;

	for (i = 0; mapping_options[i]; i++)
		if (strcmp(mapping_options[i], name) == 0)
			return true;
	return false;
}

/*
 * valid_options_list
 *		The options valid for catalog, for a hint.
 */
static char *
valid_options_list(Oid catalog)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (catalog == ForeignServerRelationId)
	{
		PQconninfoOption *opt;

		load_libpq_options();
		for (opt = libpq_options; opt->keyword; opt++)
			if (libpq_option_allowed(opt))
				appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", opt->keyword);
	}
	else if (catalog == UserMappingRelationId)
	{
		int			i;

		for (i = 0; mapping_options[i]; i++)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", mapping_options[i]);
	}
	return buf.data;
}

/*
 * dtx_fdw_validator
 *		SQL: the validator of the wrapper dtx; checks the options of servers
 *		and user mappings and rejects the rest with a clear error.
 */
PG_FUNCTION_INFO_V1(dtx_fdw_validator);
Datum
dtx_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		bool		ok;

		if (catalog == ForeignServerRelationId)
			ok = is_server_option(def->defname);
		else if (catalog == UserMappingRelationId)
			ok = is_mapping_option(def->defname);
		else
			ok = false;

		if (!ok)
		{
			char	   *valid = valid_options_list(catalog);

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 valid[0] != '\0'
					 ? errhint("Valid options in this context are: %s.", valid)
					 : errhint("There are no valid options in this context.")));
		}

		if (strcmp(def->defname, "password_required") == 0)
		{
			bool		required = defGetBoolean(def);

			if (!required && !superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("password_required=false is superuser-only"),
						 errhint("User mappings with the password_required option set to false may only be created or modified by a superuser.")));
		}
		if (strcmp(def->defname, "port") == 0 || strcmp(def->defname, "connect_timeout") == 0)
		{
			char	   *end;
			long		v = strtol(defGetString(def), &end, 10);

			if (*end != '\0' || v < 0 || v > 65535)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								def->defname, defGetString(def))));
		}
	}
	PG_RETURN_VOID();
}

/*
 * DtxServerIsParticipantKind
 *		Whether server belongs to a wrapper whose servers can take part.
 */
bool
DtxServerIsParticipantKind(ForeignServer *server)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	return strcmp(fdw->fdwname, DTX_FDW_NAME) == 0 ||
		strcmp(fdw->fdwname, POSTGRES_FDW_NAME) == 0;
}

/*
 * DtxMappingExists
 *		Whether userid has a user mapping on serverid, its own or PUBLIC's.
 */
bool
DtxMappingExists(Oid userid, Oid serverid)
{
	return SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
								 ObjectIdGetDatum(serverid)) ||
		SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(serverid));
}

/*
 * lookups_inval
 *		A server, user mapping or wrapper changed: the kept lookups are
 *		forgotten before the next one.
 */
static void
lookups_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	lookups_stale = true;
}

/*
 * lookups_table
 *		The table of kept lookups *table (made when missing), after both
 *		tables were emptied if a change made them stale.  A lookup made after
 *		this call is kept only if lookups_stale is still false then (nothing
 *		changed meanwhile).
 */
static HTAB *
lookups_table(HTAB **table, const char *name, Size keysize, Size entrysize)
{
	if (!lookups_callbacks)
	{
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, lookups_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, lookups_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(FOREIGNDATAWRAPPEROID, lookups_inval, (Datum) 0);
		lookups_callbacks = true;
	}
	if (lookups_stale)
	{
		if (resolved_servers != NULL)
			hash_destroy(resolved_servers);
		if (mappings != NULL)
			hash_destroy(mappings);
		resolved_servers = NULL;
		mappings = NULL;
		lookups_stale = false;
	}
	if (*table == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = keysize;
		ctl.entrysize = entrysize;
		ctl.hcxt = TopMemoryContext;
		*table = hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	return *table;
}

/*
 * check_server_usage
 *		Raises unless userid may use the server serverid called servername.
 */
static void
check_server_usage(Oid serverid, const char *servername, Oid userid)
{
	AclResult	aclresult;

#if PG_VERSION_NUM >= 160000
	aclresult = object_aclcheck(ForeignServerRelationId, serverid, userid, ACL_USAGE);
#else
	aclresult = pg_foreign_server_aclcheck(serverid, userid, ACL_USAGE);
#endif
	if (aclresult != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", servername),
				 errhint("A superuser or the server's owner can run GRANT USAGE ON FOREIGN SERVER %s TO %s.",
						 quote_identifier(servername),
						 quote_identifier(GetUserNameFromId(userid, false)))));
}

/*
 * DtxResolveServer
 *		The oid of the participant server called servername, for userid: it
 *		must exist, belong to a wrapper that pg_dtx serves, be usable by
 *		userid, and have a user mapping for it.  Raises clear errors.  What
 *		was found is kept for the next call (see resolved_servers).
 */
Oid
DtxResolveServer(const char *servername, Oid userid)
{
	ForeignServer *server;
	ResolvedKey key;
	ResolvedServer *e;
	bool		cacheable = strlen(servername) < NAMEDATALEN;
	HTAB	   *table = lookups_table(&resolved_servers, "pg_dtx servers",
									  sizeof(ResolvedKey), sizeof(ResolvedServer));

	memset(&key, 0, sizeof(key));
	if (cacheable)
	{
		strlcpy(NameStr(key.servername), servername, NAMEDATALEN);
		key.userid = userid;
		e = hash_search(table, &key, HASH_FIND, NULL);
		if (e != NULL)
		{
			check_server_usage(e->serverid, servername, userid);
			return e->serverid;
		}
	}

	server = GetForeignServerByName(servername, true);
	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", servername),
				 errhint("Create it with CREATE SERVER %s FOREIGN DATA WRAPPER dtx OPTIONS (host '…', port '…', dbname '…').",
						 quote_identifier(servername))));

	if (!DtxServerIsParticipantKind(server))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a server of the foreign-data wrapper dtx",
						servername),
				 errdetail("It uses the foreign-data wrapper \"%s\".",
						   GetForeignDataWrapper(server->fdwid)->fdwname),
				 errhint("pg_dtx works with servers of the wrappers dtx and postgres_fdw.")));

	check_server_usage(server->serverid, servername, userid);

	if (!DtxMappingExists(userid, server->serverid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("user mapping for \"%s\" on server \"%s\" does not exist",
						GetUserNameFromId(userid, false), servername),
				 errhint("Create one with CREATE USER MAPPING FOR %s SERVER %s OPTIONS (user '…', password '…').",
						 quote_identifier(GetUserNameFromId(userid, false)),
						 quote_identifier(servername))));

	/* kept unless something changed while it was looked up */
	if (cacheable && !lookups_stale)
	{
		e = hash_search(table, &key, HASH_ENTER, NULL);
		e->serverid = server->serverid;
	}
	return server->serverid;
}

/*
 * DtxMappingFor
 *		The oid of the user mapping that userid's connections to serverid
 *		use (its own or PUBLIC's), and the server's name in *servername
 *		(valid until the next lookup).  The caller has checked that both
 *		exist (DtxResolveServer).  What was found is kept for the next call.
 */
Oid
DtxMappingFor(Oid serverid, Oid userid, const char **servername)
{
	HTAB	   *table = lookups_table(&mappings, "pg_dtx user mappings",
									  sizeof(MappingKey), sizeof(MappingEntry));
	MappingKey	key;
	MappingEntry *m;
	ForeignServer *server;
	UserMapping *um;

	key.serverid = serverid;
	key.userid = userid;
	m = hash_search(table, &key, HASH_FIND, NULL);
	if (m != NULL)
	{
		*servername = NameStr(m->servername);
		return m->umid;
	}
	server = GetForeignServer(serverid);
	um = GetUserMapping(userid, serverid);
	*servername = server->servername;
	/* kept unless something changed while it was looked up */
	if (!lookups_stale)
	{
		m = hash_search(table, &key, HASH_ENTER, NULL);
		m->umid = um->umid;
		namestrcpy(&m->servername, server->servername);
	}
	return um->umid;
}

/*
 * DtxConnParamGiven
 *		Whether keywords[0..n-1] contains name.
 */
bool
DtxConnParamGiven(const char **keywords, int n, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(keywords[i], name) == 0)
			return true;
	return false;
}

/*
 * DtxCollectConnParams
 *		Fills keywords/values (at most max entries) with the libpq options of
 *		server and the credentials of um; returns how many.
 */
int
DtxCollectConnParams(ForeignServer *server, UserMapping *um,
					 const char **keywords, const char **values, int max)
{
	int			n = 0;
	ListCell   *lc;

	foreach(lc, server->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (n < max && is_server_option(def->defname))
		{
			keywords[n] = def->defname;
			values[n++] = defGetString(def);
		}
	}
	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (n < max && (strcmp(def->defname, "user") == 0 ||
						strcmp(def->defname, "password") == 0))
		{
			keywords[n] = def->defname;
			values[n++] = defGetString(def);
		}
	}
	return n;
}

/*
 * mapping_password_required
 *		Whether um requires a password (its password_required option).
 */
static bool
mapping_password_required(UserMapping *um)
{
	ListCell   *lc;

	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "password_required") == 0)
			return defGetBoolean(def);
	}
	return true;
}

/*
 * DtxCheckPasswordGiven
 *		Before connecting: a non-superuser's user mapping must carry a
 *		password, unless a superuser waived it.
 */
void
DtxCheckPasswordGiven(ForeignServer *server, UserMapping *um, Oid userid)
{
	ListCell   *lc;

	if (superuser_arg(userid) || !mapping_password_required(um))
		return;
	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "password") == 0 && defGetString(def)[0] != '\0')
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
			 errmsg("password is required to connect to server \"%s\"", server->servername),
			 errdetail("Non-superusers must give a password in the user mapping."),
			 errhint("Add one with ALTER USER MAPPING FOR %s SERVER %s OPTIONS (ADD password '…').",
					 quote_identifier(GetUserNameFromId(userid, false)),
					 quote_identifier(server->servername))));
}

/*
 * DtxCheckPasswordUsed
 *		After connecting: for a non-superuser, the server must actually have
 *		asked for the password (no trust or peer authentication borrowed).
 */
void
DtxCheckPasswordUsed(PGconn *conn, ForeignServer *server, UserMapping *um, Oid userid)
{
	if (superuser_arg(userid) || !mapping_password_required(um))
		return;
	if (PQconnectionUsedPassword(conn))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
			 errmsg("password is required to connect to server \"%s\"", server->servername),
			 errdetail("Non-superusers may only connect with password authentication, and the server did not ask for the password."),
			 errhint("Change the participant's authentication method, or have a superuser set password_required 'false' on the user mapping.")));
}
