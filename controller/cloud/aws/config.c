/*
 * The keys of an AWS-backed `platforms[]` entry in kanaria.yaml (type ecs):
 *
 *     platforms:
 *       - name: aws
 *         type: ecs
 *         region: us-east-1
 *         profile: deploy
 *         endpointUrl: http://127.0.0.1:5000
 */
#include "cloud/aws/aws.h"

#include <stddef.h>

static const struct kn_field kn_aws_config_fields[] = {
    {.key = "region",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_aws_config, region),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the AWS region (us-east-1); else AWS_REGION, AWS_DEFAULT_REGION, the profile's "
             "region"},
    {.key = "profile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_aws_config, profile),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the profile of the shared config and credentials files; else AWS_PROFILE, else "
             "default"},
    {.key = "endpointUrl",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_aws_config, endpoint_url),
     .help = "one endpoint for every service (VPC endpoints, emulators); "
             "AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL take precedence"},
};

const struct kn_schema kn_aws_config_schema = {
    .name = "ecs platform",
    KN_SCHEMA_FIELDS(kn_aws_config_fields),
    .size = sizeof(struct kn_aws_config),
    .set_offset = offsetof(struct kn_aws_config, set),
};
