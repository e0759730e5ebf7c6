<?php
/**
 * M2worker_Events (MIT License).
 */
declare(strict_types=1);

namespace M2worker\Events\Observer;

use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Framework\MessageQueue\PublisherInterface;
use Magento\Framework\Serialize\Serializer\Json;
use Magento\Sales\Model\Order\Shipment;
use Magento\Sales\Model\ResourceModel\Order\Shipment as ShipmentResource;
use Psr\Log\LoggerInterface;

/**
 * sales_order_shipment_save_after: publishes one m2worker task per saved
 * shipment (new, or saved again: a track added, a comment) on the topic
 * m2worker.shipment.saved, with the shipment's track numbers. The task is
 * a placeholder `rest` call that adds a comment to the order; replace it
 * with your own job.
 *
 * The event fires inside the save's transaction, so the publish waits for
 * its commit (a commit callback, dropped on rollback): no task for a
 * shipment that was rolled back.
 *
 * Everything is caught (\Throwable): a broker that is down, a serializer
 * error or a bug here must never break the shipment (or the checkout that
 * ships at once). A failure is logged and that save has no task.
 */
class ShipmentSaved implements ObserverInterface
{
    public const TOPIC = 'm2worker.shipment.saved';

    /** @var PublisherInterface */
    private $publisher;

    /** @var Json */
    private $json;

    /** @var LoggerInterface */
    private $logger;

    /** @var ShipmentResource */
    private $shipmentResource;

    public function __construct(
        PublisherInterface $publisher,
        Json $json,
        LoggerInterface $logger,
        ShipmentResource $shipmentResource
    ) {
        $this->publisher = $publisher;
        $this->json = $json;
        $this->logger = $logger;
        $this->shipmentResource = $shipmentResource;
    }

    public function execute(Observer $observer): void
    {
        try {
            $shipment = $observer->getEvent()->getShipment();
            if (!$shipment instanceof Shipment) {
                return;
            }
            $this->shipmentResource->addCommitCallback(function () use ($shipment): void {
                $this->publish($shipment);
            });
        } catch (\Throwable $e) {
            $this->logger->error('m2worker: shipment task not published', [
                'topic' => self::TOPIC,
                'exception' => $e,
            ]);
        }
    }

    /** After the commit: the envelope as JSON text, on the topic. */
    private function publish(Shipment $shipment): void
    {
        $incrementId = (string)$shipment->getIncrementId();
        try {
            $orderId = (int)$shipment->getOrderId();
            $tracks = [];
            foreach ($shipment->getTracks() ?: [] as $track) {
                $number = trim((string)$track->getTrackNumber());
                if ($number !== '') {
                    $tracks[] = $number;
                }
            }
            $tracks = array_values(array_unique($tracks));
            $comment = sprintf('m2worker: shipment %s saved', $incrementId)
                . ($tracks ? ' (tracks: ' . implode(', ', $tracks) . ')' : ' (no tracks)');
            $envelope = [
                'type' => 'rest',
                'payload' => [
                    'method' => 'POST',
                    'path' => '/V1/orders/' . $orderId . '/comments',
                    'body' => [
                        'statusHistory' => [
                            'comment' => $comment,
                            'is_customer_notified' => 0,
                            'is_visible_on_front' => 0,
                        ],
                    ],
                ],
                // the idempotency key: the shipment and its tracks, so saving
                // it again unchanged is a duplicate in m2worker, and a new
                // track a new task
                'key' => 'magento:shipment.saved:' . (int)$shipment->getId()
                    . ':' . md5(implode(',', $tracks)),
            ];
            $this->publisher->publish(self::TOPIC, $this->json->serialize($envelope));
        } catch (\Throwable $e) {
            $this->logger->error('m2worker: shipment task not published', [
                'topic' => self::TOPIC,
                'shipment' => $incrementId,
                'exception' => $e,
            ]);
        }
    }
}
