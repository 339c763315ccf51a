/* A domain's odrs metadata: libxml2 reads the element, libwake's [vm] key table its attributes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "metadata.h"

/* The most attributes read: every [vm] key once, and a few more reported as unknown. */
#define ATTRS_MAX 32

static int refuse(wk_diag_fn diag, void *ctx, const char *domain, const char *msg)
{
	if (diag)
		diag(ctx, domain, 0, msg);
	return -EINVAL;
}

int metadata_parse(const struct wk_config *cfg, const char *domain, const char *xml, wk_diag_fn diag,
		   void *ctx, struct wk_vmconf *out)
{
	const char *keys[ATTRS_MAX], *values[ATTRS_MAX];
	xmlChar *owned[ATTRS_MAX];
	char msg[256];
	size_t n = 0;
	xmlNodePtr root, child;
	xmlAttrPtr a;
	xmlDocPtr doc;
	int r;

	memset(out, 0, sizeof(*out));
	doc = xmlReadMemory(xml, (int)strlen(xml), "metadata.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return refuse(diag, ctx, domain, "its odrs metadata is not well-formed XML");
	root = xmlDocGetRootElement(doc);
	if (!root || xmlStrcmp(root->name, (const xmlChar *)"vm")) {
		snprintf(msg, sizeof(msg), "its odrs metadata is <%.64s>: expected <vm ip=\"ADDRESS\" .../>",
			 root ? (const char *)root->name : "");
		xmlFreeDoc(doc);
		return refuse(diag, ctx, domain, msg);
	}
	for (child = root->children; child; child = child->next)
		if (child->type == XML_ELEMENT_NODE) {
			snprintf(msg, sizeof(msg),
				 "its odrs metadata has <%.64s> inside <vm>: keys are attributes of <vm/>",
				 (const char *)child->name);
			xmlFreeDoc(doc);
			return refuse(diag, ctx, domain, msg);
		}
	for (a = root->properties; a && n < ATTRS_MAX; a = a->next) {
		if (!(owned[n] = xmlNodeListGetString(doc, a->children, 1)) &&
		    !(owned[n] = xmlStrdup((const xmlChar *)""))) {
			r = -ENOMEM;
			goto out;
		}
		keys[n] = (const char *)a->name;
		values[n] = (const char *)owned[n];
		n++;
	}
	if (a) {
		snprintf(msg, sizeof(msg), "its odrs metadata has more than %d attributes", ATTRS_MAX);
		r = refuse(diag, ctx, domain, msg);
		goto out;
	}
	r = wk_vmconf_parse(cfg, domain, keys, values, n, diag, ctx, out);
out:
	while (n > 0)
		xmlFree(owned[--n]);
	xmlFreeDoc(doc);
	return r;
}
