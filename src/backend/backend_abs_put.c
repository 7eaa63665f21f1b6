/*
 * The abs backend's put: the protocol of the shared put pipeline
 * (backend_s3_upload.c) for Azure block blobs.
 *
 * Up to part-size bytes it is one Put Blob (x-ms-blob-type: BlockBlob)
 * streamed from the file. Above that it is staged in blocks of part-size
 * bytes (Put Block), then committed by Put Block List: Azure shows the blob
 * only once that succeeded, and its answer is the commit. Blocks of a
 * failed upload are not visible and Azure drops uncommitted blocks on its
 * own (within a week, or at the next commit of that name), so there is
 * nothing to abort.
 *
 * Every body carries its Content-MD5, which Azure checks. The SHA-256 the
 * client's contract asks for with a file body is computed with it in the
 * same pass (sigv4_digest_fd), though Shared Key does not sign it.
 */
#include "backend/backend_s3_internal.h"
#include "azure/blob_xml.h"
#include "s3/sigv4.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 50000
#define BLOCK_ID_LEN 20 /* base64 of "lsblock-NNNNNN" (14 bytes) */

static const struct sigv4_header block_blob = {"x-ms-blob-type", "BlockBlob"};

static void fill_single(struct upload *up, struct s3_request *req)
{
	(void)up;
	req->headers = &block_blob;
	req->n_headers = 1;
}

/* Every block's ID has the same length, as Azure wants. */
static int name_block(struct upload_part *p)
{
	char raw[16];

	if ((p->tag = malloc(BLOCK_ID_LEN + 1)) == NULL)
		return -ENOMEM;
	snprintf(raw, sizeof(raw), "lsblock-%06zu", p->index);
	EVP_EncodeBlock((unsigned char *)p->tag, (const unsigned char *)raw, 14);
	return 0;
}

static size_t block_params(struct upload_part *p, struct sigv4_param *params, char num[16])
{
	(void)num;
	params[0] = (struct sigv4_param){"comp", "block"};
	params[1] = (struct sigv4_param){"blockid", p->tag};
	return 2;
}

/* Put Block List: the blob appears, made of the blocks in order. */
static void commit_blocks(struct upload *up)
{
	struct sigv4_param params[1] = {{"comp", "blocklist"}};
	const char **ids = calloc(up->n_parts, sizeof(*ids));
	struct s3_request req = {0};
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	size_t len = 0;
	int rc = ids == NULL ? -ENOMEM : 0;

	for (size_t i = 0; rc == 0 && i < up->n_parts; i++)
		ids[i] = up->parts[i].tag;
	if (rc == 0)
		rc = abs_xml_block_list(ids, up->n_parts, &up->body, &len);
	free(ids);
	if (rc == 0)
		rc = sigv4_md5_base64(up->body, len, md5);
	if (rc != 0) {
		upload_finish(up, rc, "PUT (block list): building the body: out of memory");
		return;
	}
	req.method = "PUT";
	req.key = up->full;
	req.label = up->key;
	req.what = "block list";
	req.params = params;
	req.n_params = 1;
	req.content_md5 = md5;
	req.content_type = "application/xml";
	req.body = S3_BODY_MEMORY;
	req.body_buf = up->body;
	req.body_len = len;
	upload_send(up, &req, NULL);
}

static const struct upload_protocol abs_protocol = {
	.unit = "block",
	.max_parts = MAX_BLOCKS,
	.part_flags = 0,
	.fill_single = fill_single,
	.name_part = name_block,
	.part_params = block_params,
	.commit = commit_blocks,
};

void backend_abs_put(struct backend *b, const char *key, const char *local_path,
		     backend_done_cb cb, void *arg)
{
	upload_start(b, &abs_protocol, key, local_path, cb, arg);
}
