//! The S3 front end: the `s3s::S3` implementation clients talk to. GET/HEAD and writes go
//! through the engine; every other operation passes through to the origin unchanged. Every
//! operation is counted and timed here.

use std::sync::Arc;
use std::time::Instant;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::engine::Engine;
use crate::engine::write::Target;

/// The `S3` service clients talk to.
#[derive(Clone)]
pub struct Front {
    engine: Arc<Engine>,
}

impl Front {
    /// A front end over `engine`.
    #[must_use]
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    fn record<T>(&self, operation: &'static str, result: &S3Result<T>, started: Instant) {
        let label = match result {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        self.engine.metrics().request(operation, label, started.elapsed());
    }
}

/// Generates the `S3` impl from three lists: operations the engine answers, writes that
/// invalidate the objects they name, and everything else, which goes to the origin.
macro_rules! front {
    (
        engine { $($e:ident: $ein:ident => $eout:ident as $eop:literal;)* }
        writes { $($w:ident: $win:ident => $wout:ident as $wop:literal, |$i:ident| $targets:expr;)* }
        passthrough { $($p:ident: $pin:ident => $pout:ident as $pop:literal;)* }
    ) => {
        #[async_trait::async_trait]
        impl S3 for Front {
            $(
                async fn $e(&self, req: S3Request<$ein>) -> S3Result<S3Response<$eout>> {
                    let started = Instant::now();
                    let result = self.engine.$e(req).await;
                    self.record($eop, &result, started);
                    result
                }
            )*
            $(
                async fn $w(&self, req: S3Request<$win>) -> S3Result<S3Response<$wout>> {
                    let started = Instant::now();
                    let targets: Vec<Target> = {
                        let $i = &req.input;
                        $targets
                    };
                    let result = self.engine.write($wop, targets, move |s3: &dyn S3| s3.$w(req)).await;
                    self.record($wop, &result, started);
                    result
                }
            )*
            $(
                async fn $p(&self, req: S3Request<$pin>) -> S3Result<S3Response<$pout>> {
                    let started = Instant::now();
                    let origin = self.engine.origin();
                    let result = origin.call($pop, origin.s3().$p(req)).await;
                    self.record($pop, &result, started);
                    result
                }
            )*
        }
    };
}

front! {
    engine {
        get_object: GetObjectInput => GetObjectOutput as "GetObject";
        head_object: HeadObjectInput => HeadObjectOutput as "HeadObject";
        put_object: PutObjectInput => PutObjectOutput as "PutObject";
    }
    writes {
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput as "CompleteMultipartUpload", |i| Target::new(&i.bucket, &i.key, None).into_iter().collect();
        copy_object: CopyObjectInput => CopyObjectOutput as "CopyObject", |i| Target::new(&i.bucket, &i.key, None).into_iter().collect();
        delete_object: DeleteObjectInput => DeleteObjectOutput as "DeleteObject", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        delete_object_tagging: DeleteObjectTaggingInput => DeleteObjectTaggingOutput as "DeleteObjectTagging", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        delete_objects: DeleteObjectsInput => DeleteObjectsOutput as "DeleteObjects", |i| i.delete.objects.iter().filter_map(|o| Target::new(&i.bucket, &o.key, o.version_id.as_deref())).collect();
        put_object_acl: PutObjectAclInput => PutObjectAclOutput as "PutObjectAcl", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        put_object_legal_hold: PutObjectLegalHoldInput => PutObjectLegalHoldOutput as "PutObjectLegalHold", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        put_object_retention: PutObjectRetentionInput => PutObjectRetentionOutput as "PutObjectRetention", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        put_object_tagging: PutObjectTaggingInput => PutObjectTaggingOutput as "PutObjectTagging", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
        restore_object: RestoreObjectInput => RestoreObjectOutput as "RestoreObject", |i| Target::new(&i.bucket, &i.key, i.version_id.as_deref()).into_iter().collect();
    }
    passthrough {
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput as "AbortMultipartUpload";
        create_bucket: CreateBucketInput => CreateBucketOutput as "CreateBucket";
        create_bucket_metadata_table_configuration: CreateBucketMetadataTableConfigurationInput => CreateBucketMetadataTableConfigurationOutput as "CreateBucketMetadataTableConfiguration";
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput as "CreateMultipartUpload";
        create_session: CreateSessionInput => CreateSessionOutput as "CreateSession";
        delete_bucket: DeleteBucketInput => DeleteBucketOutput as "DeleteBucket";
        delete_bucket_analytics_configuration: DeleteBucketAnalyticsConfigurationInput => DeleteBucketAnalyticsConfigurationOutput as "DeleteBucketAnalyticsConfiguration";
        delete_bucket_cors: DeleteBucketCorsInput => DeleteBucketCorsOutput as "DeleteBucketCors";
        delete_bucket_encryption: DeleteBucketEncryptionInput => DeleteBucketEncryptionOutput as "DeleteBucketEncryption";
        delete_bucket_intelligent_tiering_configuration: DeleteBucketIntelligentTieringConfigurationInput => DeleteBucketIntelligentTieringConfigurationOutput as "DeleteBucketIntelligentTieringConfiguration";
        delete_bucket_inventory_configuration: DeleteBucketInventoryConfigurationInput => DeleteBucketInventoryConfigurationOutput as "DeleteBucketInventoryConfiguration";
        delete_bucket_lifecycle: DeleteBucketLifecycleInput => DeleteBucketLifecycleOutput as "DeleteBucketLifecycle";
        delete_bucket_metadata_table_configuration: DeleteBucketMetadataTableConfigurationInput => DeleteBucketMetadataTableConfigurationOutput as "DeleteBucketMetadataTableConfiguration";
        delete_bucket_metrics_configuration: DeleteBucketMetricsConfigurationInput => DeleteBucketMetricsConfigurationOutput as "DeleteBucketMetricsConfiguration";
        delete_bucket_ownership_controls: DeleteBucketOwnershipControlsInput => DeleteBucketOwnershipControlsOutput as "DeleteBucketOwnershipControls";
        delete_bucket_policy: DeleteBucketPolicyInput => DeleteBucketPolicyOutput as "DeleteBucketPolicy";
        delete_bucket_replication: DeleteBucketReplicationInput => DeleteBucketReplicationOutput as "DeleteBucketReplication";
        delete_bucket_tagging: DeleteBucketTaggingInput => DeleteBucketTaggingOutput as "DeleteBucketTagging";
        delete_bucket_website: DeleteBucketWebsiteInput => DeleteBucketWebsiteOutput as "DeleteBucketWebsite";
        delete_public_access_block: DeletePublicAccessBlockInput => DeletePublicAccessBlockOutput as "DeletePublicAccessBlock";
        get_bucket_accelerate_configuration: GetBucketAccelerateConfigurationInput => GetBucketAccelerateConfigurationOutput as "GetBucketAccelerateConfiguration";
        get_bucket_acl: GetBucketAclInput => GetBucketAclOutput as "GetBucketAcl";
        get_bucket_analytics_configuration: GetBucketAnalyticsConfigurationInput => GetBucketAnalyticsConfigurationOutput as "GetBucketAnalyticsConfiguration";
        get_bucket_cors: GetBucketCorsInput => GetBucketCorsOutput as "GetBucketCors";
        get_bucket_encryption: GetBucketEncryptionInput => GetBucketEncryptionOutput as "GetBucketEncryption";
        get_bucket_intelligent_tiering_configuration: GetBucketIntelligentTieringConfigurationInput => GetBucketIntelligentTieringConfigurationOutput as "GetBucketIntelligentTieringConfiguration";
        get_bucket_inventory_configuration: GetBucketInventoryConfigurationInput => GetBucketInventoryConfigurationOutput as "GetBucketInventoryConfiguration";
        get_bucket_lifecycle_configuration: GetBucketLifecycleConfigurationInput => GetBucketLifecycleConfigurationOutput as "GetBucketLifecycleConfiguration";
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput as "GetBucketLocation";
        get_bucket_logging: GetBucketLoggingInput => GetBucketLoggingOutput as "GetBucketLogging";
        get_bucket_metadata_table_configuration: GetBucketMetadataTableConfigurationInput => GetBucketMetadataTableConfigurationOutput as "GetBucketMetadataTableConfiguration";
        get_bucket_metrics_configuration: GetBucketMetricsConfigurationInput => GetBucketMetricsConfigurationOutput as "GetBucketMetricsConfiguration";
        get_bucket_notification_configuration: GetBucketNotificationConfigurationInput => GetBucketNotificationConfigurationOutput as "GetBucketNotificationConfiguration";
        get_bucket_ownership_controls: GetBucketOwnershipControlsInput => GetBucketOwnershipControlsOutput as "GetBucketOwnershipControls";
        get_bucket_policy: GetBucketPolicyInput => GetBucketPolicyOutput as "GetBucketPolicy";
        get_bucket_policy_status: GetBucketPolicyStatusInput => GetBucketPolicyStatusOutput as "GetBucketPolicyStatus";
        get_bucket_replication: GetBucketReplicationInput => GetBucketReplicationOutput as "GetBucketReplication";
        get_bucket_request_payment: GetBucketRequestPaymentInput => GetBucketRequestPaymentOutput as "GetBucketRequestPayment";
        get_bucket_tagging: GetBucketTaggingInput => GetBucketTaggingOutput as "GetBucketTagging";
        get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput as "GetBucketVersioning";
        get_bucket_website: GetBucketWebsiteInput => GetBucketWebsiteOutput as "GetBucketWebsite";
        get_object_acl: GetObjectAclInput => GetObjectAclOutput as "GetObjectAcl";
        get_object_attributes: GetObjectAttributesInput => GetObjectAttributesOutput as "GetObjectAttributes";
        get_object_legal_hold: GetObjectLegalHoldInput => GetObjectLegalHoldOutput as "GetObjectLegalHold";
        get_object_lock_configuration: GetObjectLockConfigurationInput => GetObjectLockConfigurationOutput as "GetObjectLockConfiguration";
        get_object_retention: GetObjectRetentionInput => GetObjectRetentionOutput as "GetObjectRetention";
        get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput as "GetObjectTagging";
        get_object_torrent: GetObjectTorrentInput => GetObjectTorrentOutput as "GetObjectTorrent";
        get_public_access_block: GetPublicAccessBlockInput => GetPublicAccessBlockOutput as "GetPublicAccessBlock";
        head_bucket: HeadBucketInput => HeadBucketOutput as "HeadBucket";
        list_bucket_analytics_configurations: ListBucketAnalyticsConfigurationsInput => ListBucketAnalyticsConfigurationsOutput as "ListBucketAnalyticsConfigurations";
        list_bucket_intelligent_tiering_configurations: ListBucketIntelligentTieringConfigurationsInput => ListBucketIntelligentTieringConfigurationsOutput as "ListBucketIntelligentTieringConfigurations";
        list_bucket_inventory_configurations: ListBucketInventoryConfigurationsInput => ListBucketInventoryConfigurationsOutput as "ListBucketInventoryConfigurations";
        list_bucket_metrics_configurations: ListBucketMetricsConfigurationsInput => ListBucketMetricsConfigurationsOutput as "ListBucketMetricsConfigurations";
        list_buckets: ListBucketsInput => ListBucketsOutput as "ListBuckets";
        list_directory_buckets: ListDirectoryBucketsInput => ListDirectoryBucketsOutput as "ListDirectoryBuckets";
        list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput as "ListMultipartUploads";
        list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput as "ListObjectVersions";
        list_objects: ListObjectsInput => ListObjectsOutput as "ListObjects";
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output as "ListObjectsV2";
        list_parts: ListPartsInput => ListPartsOutput as "ListParts";
        put_bucket_accelerate_configuration: PutBucketAccelerateConfigurationInput => PutBucketAccelerateConfigurationOutput as "PutBucketAccelerateConfiguration";
        put_bucket_acl: PutBucketAclInput => PutBucketAclOutput as "PutBucketAcl";
        put_bucket_analytics_configuration: PutBucketAnalyticsConfigurationInput => PutBucketAnalyticsConfigurationOutput as "PutBucketAnalyticsConfiguration";
        put_bucket_cors: PutBucketCorsInput => PutBucketCorsOutput as "PutBucketCors";
        put_bucket_encryption: PutBucketEncryptionInput => PutBucketEncryptionOutput as "PutBucketEncryption";
        put_bucket_intelligent_tiering_configuration: PutBucketIntelligentTieringConfigurationInput => PutBucketIntelligentTieringConfigurationOutput as "PutBucketIntelligentTieringConfiguration";
        put_bucket_inventory_configuration: PutBucketInventoryConfigurationInput => PutBucketInventoryConfigurationOutput as "PutBucketInventoryConfiguration";
        put_bucket_lifecycle_configuration: PutBucketLifecycleConfigurationInput => PutBucketLifecycleConfigurationOutput as "PutBucketLifecycleConfiguration";
        put_bucket_logging: PutBucketLoggingInput => PutBucketLoggingOutput as "PutBucketLogging";
        put_bucket_metrics_configuration: PutBucketMetricsConfigurationInput => PutBucketMetricsConfigurationOutput as "PutBucketMetricsConfiguration";
        put_bucket_notification_configuration: PutBucketNotificationConfigurationInput => PutBucketNotificationConfigurationOutput as "PutBucketNotificationConfiguration";
        put_bucket_ownership_controls: PutBucketOwnershipControlsInput => PutBucketOwnershipControlsOutput as "PutBucketOwnershipControls";
        put_bucket_policy: PutBucketPolicyInput => PutBucketPolicyOutput as "PutBucketPolicy";
        put_bucket_replication: PutBucketReplicationInput => PutBucketReplicationOutput as "PutBucketReplication";
        put_bucket_request_payment: PutBucketRequestPaymentInput => PutBucketRequestPaymentOutput as "PutBucketRequestPayment";
        put_bucket_tagging: PutBucketTaggingInput => PutBucketTaggingOutput as "PutBucketTagging";
        put_bucket_versioning: PutBucketVersioningInput => PutBucketVersioningOutput as "PutBucketVersioning";
        put_bucket_website: PutBucketWebsiteInput => PutBucketWebsiteOutput as "PutBucketWebsite";
        put_object_lock_configuration: PutObjectLockConfigurationInput => PutObjectLockConfigurationOutput as "PutObjectLockConfiguration";
        put_public_access_block: PutPublicAccessBlockInput => PutPublicAccessBlockOutput as "PutPublicAccessBlock";
        select_object_content: SelectObjectContentInput => SelectObjectContentOutput as "SelectObjectContent";
        upload_part: UploadPartInput => UploadPartOutput as "UploadPart";
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput as "UploadPartCopy";
        write_get_object_response: WriteGetObjectResponseInput => WriteGetObjectResponseOutput as "WriteGetObjectResponse";
    }
}
