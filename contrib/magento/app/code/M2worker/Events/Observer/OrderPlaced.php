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
use Magento\Sales\Model\Order;
use Magento\Sales\Model\ResourceModel\Order as OrderResource;
use Psr\Log\LoggerInterface;

/**
 * sales_order_place_after: publishes one m2worker task for the new order
 * on the topic m2worker.order.placed (a placeholder `rest` task that adds
 * an order comment; replace it with your own job).
 *
 * The event fires inside Order::place(), before the order is saved: the
 * order has its increment id but no entity id yet, and its save can still
 * fail. So the publish is deferred to the commit of that save (a commit
 * callback on the sales connection, dropped on rollback): m2worker never
 * gets a task for an order that was rolled back or is not visible yet.
 *
 * Everything is caught (\Throwable): a broker that is down, a serializer
 * error or a bug here must never break checkout. A failure is logged and
 * that order has no task; nothing publishes it again.
 */
class OrderPlaced implements ObserverInterface
{
    public const TOPIC = 'm2worker.order.placed';

    /** @var PublisherInterface */
    private $publisher;

    /** @var Json */
    private $json;

    /** @var LoggerInterface */
    private $logger;

    /** @var OrderResource */
    private $orderResource;

    public function __construct(
        PublisherInterface $publisher,
        Json $json,
        LoggerInterface $logger,
        OrderResource $orderResource
    ) {
        $this->publisher = $publisher;
        $this->json = $json;
        $this->logger = $logger;
        $this->orderResource = $orderResource;
    }

    public function execute(Observer $observer): void
    {
        try {
            $order = $observer->getEvent()->getOrder();
            if (!$order instanceof Order) {
                return;
            }
            $this->orderResource->addCommitCallback(function () use ($order): void {
                $this->publish($order);
            });
        } catch (\Throwable $e) {
            $this->logger->error('m2worker: order task not published', [
                'topic' => self::TOPIC,
                'exception' => $e,
            ]);
        }
    }

    /** After the commit: the envelope as JSON text, on the topic. */
    private function publish(Order $order): void
    {
        $incrementId = (string)$order->getIncrementId();
        try {
            $orderId = (int)$order->getId();
            if ($orderId <= 0) {
                $this->logger->warning('m2worker: order has no id at commit, no task', [
                    'topic' => self::TOPIC,
                    'increment_id' => $incrementId,
                ]);
                return;
            }
            $envelope = [
                'type' => 'rest',
                'payload' => [
                    'method' => 'POST',
                    'path' => '/V1/orders/' . $orderId . '/comments',
                    'body' => [
                        'statusHistory' => [
                            'comment' => sprintf('m2worker: order %s received', $incrementId),
                            'is_customer_notified' => 0,
                            'is_visible_on_front' => 0,
                        ],
                    ],
                ],
                // the idempotency key: a second publish for this order is a
                // duplicate in m2worker, not a second task
                'key' => 'magento:order.placed:' . $incrementId,
            ];
            $this->publisher->publish(self::TOPIC, $this->json->serialize($envelope));
        } catch (\Throwable $e) {
            $this->logger->error('m2worker: order task not published', [
                'topic' => self::TOPIC,
                'increment_id' => $incrementId,
                'exception' => $e,
            ]);
        }
    }
}
